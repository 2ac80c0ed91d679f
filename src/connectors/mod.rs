//! Connectors: where points come from.
//!
//! The registry below is the one place that knows each connector type:
//! whether it runs on a schedule ([`Runner::Scheduled`], run by
//! [`scheduler`]) or streams ([`Runner::Streaming`], run by [`runner`]), and
//! how it is built. A new type is its own file plus one arm in [`runner_for`].

pub mod guard;
pub mod http;
pub mod kafka;
pub mod prometheus;
pub mod pull;
mod request;
pub mod runner;
pub mod scheduler;
pub mod sql;
pub mod synthetic;

use std::future::Future;
use std::pin::Pin;

use tokio_util::sync::CancellationToken;

use crate::config::connector::{Connector, ConnectorKind};
use crate::live::Services;

use guard::Guard;
use pull::Pull;

/// A streaming connector's task, given the services and its stop token.
pub type Stream =
    Box<dyn FnOnce(Services, CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// How a connector runs.
pub enum Runner {
    /// A pull, run on the connector's schedule by [`scheduler`].
    Scheduled(Box<dyn Pull>),
    /// A task that runs until its stop token is cancelled.
    Streaming(Stream),
}

/// Whether connectors of this kind run on a schedule.
pub fn is_scheduled(kind: &ConnectorKind) -> bool {
    matches!(
        kind,
        ConnectorKind::Http(_) | ConnectorKind::Prometheus(_) | ConnectorKind::Sql(_)
    )
}

/// The registry: builds `c`'s runner. `guard` bounds where a connector
/// registered over the API may connect.
pub fn runner_for(c: &Connector, guard: Option<Guard>) -> Runner {
    match &c.kind {
        ConnectorKind::Http(s) => {
            Runner::Scheduled(Box::new(http::HttpPull::new(s.clone(), guard)))
        }
        ConnectorKind::Prometheus(s) => {
            Runner::Scheduled(Box::new(prometheus::PrometheusPull::new(s.clone(), guard)))
        }
        ConnectorKind::Sql(s) => {
            Runner::Scheduled(Box::new(sql::SqlPull::new(s.clone(), c.timeout, guard)))
        }
        ConnectorKind::Kafka(k) => {
            let (name, source) = (c.name.clone(), k.clone());
            Runner::Streaming(Box::new(move |services, stop| {
                Box::pin(kafka::run(services, name, source, stop))
            }))
        }
        ConnectorKind::Synthetic => {
            let c = c.clone();
            Runner::Streaming(Box::new(move |services, stop| {
                Box::pin(runner::run_synthetic(services, c, stop))
            }))
        }
    }
}
