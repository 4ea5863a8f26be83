//! Who may use the proxy, and where they may go through it.
//!
//! `--allow` takes CIDR blocks (RFC 4632) such as `127.0.0.0/8` or
//! `192.168.1.0/24`. An open proxy on the internet is soon found and
//! abused, so the default is loopback only.
//!
//! Where to, squid's packaged policy, taught:
//! - `to_localhost`: a client on another host may not reach this host's own
//!   loopback or unspecified addresses (`127.0.0.0/8`, `0.0.0.0/8`, `::1`,
//!   `::`, however written: `127.1`, `2130706433`, `0`, `[::ffff:127.0.0.1]`).
//!   Services that listen on 127.0.0.1 trust that only this host reaches
//!   them; a proxy open to the lab network would break that promise.
//! - `Safe_ports`: plain HTTP goes only to the usual ports (`--http-ports`),
//!   so the proxy cannot be used to talk to SSH or SMTP in HTTP's clothes;
//!   CONNECT only to `--connect-ports` (443).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// The 403 for a client on another host asking for this host's loopback.
pub const TO_LOCALHOST: &str = "clients on other hosts may not reach this host's own \
     loopback or unspecified addresses (127.0.0.0/8, 0.0.0.0/8, ::1, ::) \
     (rule to_localhost, as in squid); connect to the proxy from this host \
     to reach its local services";

/// The 403 for plain HTTP to a port outside `--http-ports`.
pub const UNUSUAL_PORT: &str = "plain HTTP goes only to the usual web ports \
     (rule Safe_ports, as in squid: 80,21,443,70,210,280,488,591,777,1025-65535); \
     start web_proxy with --http-ports LIST to widen it";

/// True if `ip` is one of this host's own addresses that only this host
/// should reach: loopback, or unspecified (connecting to 0.0.0.0 reaches
/// this host on Linux).
fn is_local_only(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.is_loopback() || v4.octets()[0] == 0,
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified(),
    }
}

/// Why a client at `client` may not reach `targets`, if it may not:
/// the `to_localhost` rule.
pub fn destination_refusal(client: IpAddr, targets: &[SocketAddr]) -> Option<&'static str> {
    let from_here = client.to_canonical().is_loopback();
    let local = targets.iter().any(|t| is_local_only(t.ip()));
    (local && !from_here).then_some(TO_LOCALHOST)
}

/// A port or an inclusive range of ports: `80` or `1025-65535`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(text: &str) -> Result<PortRange, String> {
        let bad = || format!("invalid port or range '{text}': use 80 or 1025-65535");
        let (first, last) = text.split_once('-').unwrap_or((text, text));
        let first: u16 = first.trim().parse().map_err(|_| bad())?;
        let last: u16 = last.trim().parse().map_err(|_| bad())?;
        match first <= last && first > 0 {
            true => Ok(PortRange { first, last }),
            false => Err(bad()),
        }
    }
}

/// An IP network: an address and how many of its leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// True if `ip` is inside this network. An IPv4 client of a socket
    /// bound to `::` shows up as `::ffff:a.b.c.d`; it is compared as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

/// True if the first `prefix` bits of `a` and `b` are equal.
fn same_prefix(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let mut bits = u32::from(prefix);
    for (x, y) in a.iter().zip(b) {
        let mask = match bits {
            0 => return true,
            1..=7 => 0xffu8 << (8 - bits),
            _ => 0xff,
        };
        if (x ^ y) & mask != 0 {
            return false;
        }
        bits = bits.saturating_sub(8);
    }
    true
}

impl FromStr for Cidr {
    type Err = String;

    /// `10.0.0.0/8`, `::1/128`, or a bare address meaning that one host.
    fn from_str(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("invalid CIDR '{text}': '{addr}' is not an IP address"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => {
                    return Err(format!(
                        "invalid CIDR '{text}': the prefix length must be 0 to {max}"
                    ));
                }
            },
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Parses a byte count such as `1048576`, `512K`, `64M` or `1G` (powers of 1024).
pub fn byte_size(text: &str) -> Result<usize, String> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let scale: usize = match text[digits.len()..].to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size '{text}': use a number of bytes, or K, M or G"
            ));
        }
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("invalid size '{text}': use a number of bytes, or K, M or G"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().expect("valid CIDR")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("valid IP")
    }

    #[test]
    fn networks_contain_their_addresses() {
        assert!(cidr("127.0.0.0/8").contains(ip("127.1.2.3")));
        assert!(!cidr("127.0.0.0/8").contains(ip("128.0.0.1")));
        assert!(cidr("192.168.1.0/23").contains(ip("192.168.0.200")));
        assert!(!cidr("192.168.1.0/24").contains(ip("192.168.0.200")));
        assert!(cidr("10.1.2.3/31").contains(ip("10.1.2.2")));
        assert!(cidr("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(cidr("::1/128").contains(ip("::1")));
        assert!(cidr("fd00::/8").contains(ip("fd12::1")));
        assert!(!cidr("::1/128").contains(ip("127.0.0.1")));
        assert!(cidr("10.0.0.5").contains(ip("10.0.0.5")));
        assert!(!cidr("10.0.0.5").contains(ip("10.0.0.6")));
    }

    #[test]
    fn ipv4_mapped_clients_match_ipv4_networks() {
        assert!(cidr("127.0.0.0/8").contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn bad_cidrs_are_named() {
        for bad in [
            "",
            "localhost",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/x",
            "10.0.0/8",
        ] {
            let err = bad.parse::<Cidr>().expect_err(bad);
            assert!(err.starts_with(&format!("invalid CIDR '{bad}'")), "{err}");
        }
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
    }

    #[test]
    fn other_hosts_may_not_reach_this_hosts_loopback_however_written() {
        let targets = |text: &str| -> Vec<SocketAddr> {
            socketlab::cli::resolve(text, 8000).expect("resolves")
        };
        let lab = ip("192.168.1.20");
        // Every spelling of a local-only address the two-host probe used.
        for host in [
            "127.0.0.1",
            "127.1",
            "2130706433",
            "0",
            "0.0.0.0",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "localhost",
        ] {
            assert_eq!(
                destination_refusal(lab, &targets(host)),
                Some(TO_LOCALHOST),
                "{host}"
            );
            assert_eq!(
                destination_refusal(ip("127.0.0.1"), &targets(host)),
                None,
                "{host} from this host"
            );
            assert_eq!(
                destination_refusal(ip("::ffff:127.0.0.1"), &targets(host)),
                None
            );
        }
        assert_eq!(destination_refusal(lab, &targets("192.168.1.1")), None);
    }

    #[test]
    fn port_ranges() {
        let range: PortRange = "1025-65535".parse().expect("range");
        assert!(range.contains(1025) && range.contains(65535) && !range.contains(22));
        let one: PortRange = "80".parse().expect("port");
        assert!(one.contains(80) && !one.contains(81));
        for bad in ["", "0", "22-21", "80-", "x", "70000"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(byte_size("1048576"), Ok(1 << 20));
        assert_eq!(byte_size("512K"), Ok(512 << 10));
        assert_eq!(byte_size("64m"), Ok(64 << 20));
        assert_eq!(byte_size("1GiB"), Ok(1 << 30));
        for bad in ["", "M", "12X", "-1", "99999999999999999999G"] {
            assert!(byte_size(bad).is_err(), "{bad}");
        }
    }
}
