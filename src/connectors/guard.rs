//! The destination guard of connectors registered over the API: they may
//! connect only where `http.connector_destinations` allows
//! ([`Destinations`]). The check is on the resolved address, at connect
//! time: the HTTP client resolves names through [`Guard::resolver`], which
//! drops every refused address, so a name that resolves to a public
//! address when registered and to 127.0.0.1 later (DNS rebinding) is
//! refused then; an address written literally in a URL is checked before
//! the request, and redirects are not followed. A `sql` source connects to
//! the address the guard checked. Connectors from YAML files are reviewed
//! in Git and are not guarded.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::config::destinations::Destinations;

/// Checks destinations against the allowed list.
#[derive(Debug, Clone)]
pub struct Guard {
    destinations: Arc<Destinations>,
}

impl Guard {
    /// A guard allowing `destinations`.
    pub fn new(destinations: Destinations) -> Self {
        Self {
            destinations: Arc::new(destinations),
        }
    }

    /// Refuses `addr` unless allowed.
    pub fn check(&self, addr: SocketAddr) -> Result<(), String> {
        match self.destinations.refusal(addr) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// The addresses of `host:port` that are allowed; an error when it
    /// resolves to none, or to none allowed.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect();
        let mut refusal = None;
        let allowed: Vec<SocketAddr> = found
            .into_iter()
            .filter(|a| match self.check(*a) {
                Ok(()) => true,
                Err(why) => {
                    refusal.get_or_insert(why);
                    false
                }
            })
            .collect();
        if allowed.is_empty() {
            return Err(refusal.unwrap_or_else(|| format!("{host} resolves to no address")));
        }
        Ok(allowed)
    }

    /// Checks a URL whose host is an IP address (the resolver never sees
    /// those); names are checked when resolved.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
        let port = url.port_or_known_default().unwrap_or(80);
        let Some(host) = url.host_str() else {
            return Err("the URL has no host".into());
        };
        match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
        {
            Ok(ip) => self.check(SocketAddr::new(ip, port)),
            Err(_) => Ok(()),
        }
    }

    /// A resolver for an HTTP client whose requests go to `port`.
    pub fn resolver(&self, port: u16) -> Arc<impl Resolve> {
        Arc::new(Resolver {
            guard: self.clone(),
            port,
        })
    }
}

struct Resolver {
    guard: Guard,
    port: u16,
}

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let port = self.port;
        Box::pin(async move {
            let addrs = guard.resolve(name.as_str(), port).await?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}
