//! Connectors: where points come from.

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
