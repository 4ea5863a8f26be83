//! Who may use the proxy: `--allow` takes CIDR blocks (RFC 4632) such as
//! `127.0.0.0/8` or `192.168.1.0/24`. An open proxy on the internet is
//! soon found and abused, so the default is loopback only.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

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
