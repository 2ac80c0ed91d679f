//! `http.connector_destinations`: where connectors registered over the API
//! may connect. Each entry is a CIDR block (`10.20.0.0/16`, `2001:db8::/32`,
//! a bare address for one host) or the word `public`: every address that
//! is none of loopback, link-local (169.254.0.0/16, the cloud metadata
//! service's), private (10/8, 172.16/12, 192.168/16, fc00::/7), shared
//! (100.64/10), unspecified, multicast, broadcast or reserved. The default
//! is `[public]`. Whatever the list says, this okrd's own listen port on
//! its own addresses is never allowed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// One allowed range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Every public address.
    Public,
    /// A CIDR block.
    Net(IpNet),
}

/// The allowed destinations, plus this instance's own listen address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destinations {
    /// The allowed ranges.
    pub allowed: Vec<Destination>,
    /// `http.listen`, never a destination.
    pub own: SocketAddr,
}

impl Destinations {
    /// The default: public addresses only.
    pub fn public(own: SocketAddr) -> Self {
        Self {
            allowed: vec![Destination::Public],
            own,
        }
    }

    /// Parses the list; an error names the bad entry.
    pub fn parse(entries: &[String], own: SocketAddr) -> Result<Self, String> {
        let allowed = entries
            .iter()
            .map(|e| match e.trim() {
                "public" => Ok(Destination::Public),
                text => text
                    .parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map(Destination::Net)
                    .map_err(|_| {
                        format!("{text:?} is neither `public` nor a CIDR block like 10.0.0.0/8")
                    }),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { allowed, own })
    }

    /// Why okrd may not connect to `addr`, or `None` when it may.
    pub fn refusal(&self, addr: SocketAddr) -> Option<String> {
        let ip = canonical(addr.ip());
        if addr.port() == self.own.port() && (is_own(ip) || ip == canonical(self.own.ip())) {
            return Some(format!("{addr} is this okrd's own listen address"));
        }
        let allowed = self.allowed.iter().any(|d| match d {
            Destination::Public => is_public(ip),
            Destination::Net(net) => net.contains(&ip),
        });
        (!allowed).then(|| {
            format!(
                "{ip} is not an allowed destination for connectors registered over the API \
                 (http.connector_destinations allows {}; loopback, link-local and private \
                 addresses need an explicit entry)",
                self.describe()
            )
        })
    }

    fn describe(&self) -> String {
        let list: Vec<String> = self
            .allowed
            .iter()
            .map(|d| match d {
                Destination::Public => "public".to_string(),
                Destination::Net(n) => n.to_string(),
            })
            .collect();
        if list.is_empty() {
            "nothing".into()
        } else {
            list.join(", ")
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Addresses that reach this machine whatever it is listening on.
fn is_own(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified()
}

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || ip.segments()[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible, deprecated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> SocketAddr {
        "127.0.0.1:9464".parse().unwrap()
    }

    #[test]
    fn the_default_allows_public_addresses_only() {
        let d = Destinations::public(own());
        for denied in [
            "127.0.0.1:80",
            "127.8.9.1:5432",
            "[::1]:80",
            "[::ffff:127.0.0.1]:80",
            "169.254.169.254:80",
            "10.1.2.3:80",
            "172.16.0.1:80",
            "192.168.1.1:80",
            "100.64.0.1:80",
            "0.0.0.0:80",
            "[fd00::1]:80",
            "[fe80::1]:80",
            "224.0.0.1:80",
        ] {
            assert!(d.refusal(denied.parse().unwrap()).is_some(), "{denied}");
        }
        for allowed in ["93.184.216.34:443", "[2606:4700::1111]:443", "8.8.8.8:53"] {
            assert_eq!(d.refusal(allowed.parse().unwrap()), None, "{allowed}");
        }
    }

    #[test]
    fn explicit_ranges_and_the_own_port() {
        let d = Destinations::parse(&["127.0.0.0/8".into(), "10.0.0.7".into()], own()).unwrap();
        assert_eq!(d.refusal("127.0.0.1:9090".parse().unwrap()), None);
        assert_eq!(d.refusal("10.0.0.7:5432".parse().unwrap()), None);
        assert!(d.refusal("10.0.0.8:5432".parse().unwrap()).is_some());
        assert!(d.refusal("8.8.8.8:53".parse().unwrap()).is_some());
        let own_port = d.refusal("127.0.0.1:9464".parse().unwrap()).unwrap();
        assert!(own_port.contains("own listen address"), "{own_port}");
        assert!(d.refusal("[::1]:9464".parse().unwrap()).is_some());
        let e = Destinations::parse(&["10.0.0.0/33".into()], own()).unwrap_err();
        assert!(e.contains("10.0.0.0/33"), "{e}");
    }
}
