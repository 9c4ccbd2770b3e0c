//! CIDR ranges for `trusted_sources`, and the downstream address Envoy reports.
//!
//! An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, what a dual-stack listener reports for an
//! IPv4 client) is treated as the IPv4 address it carries, on both sides: a mapped range in the
//! configuration becomes the IPv4 range, and a mapped source is matched against IPv4 ranges.

use serde::Deserialize;
use shield_kit::log_escape::escape_quoted;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// An IPv4 or IPv6 network: address with the host bits zero, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Cidr {
    /// An IPv4 network, prefix 0..=32.
    V4 {
        /// Network address (host bits zero).
        network: u32,
        /// Prefix length.
        prefix: u8,
    },
    /// An IPv6 network, prefix 0..=128.
    V6 {
        /// Network address (host bits zero).
        network: u128,
        /// Prefix length.
        prefix: u8,
    },
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128).
    ///
    /// Host bits must be zero: `10.1.2.3/8` is refused rather than widened to `10.0.0.0/8`,
    /// since it usually means someone meant a single host and would trust a whole network.
    pub fn parse(text: &str) -> Result<Self, InvalidCidr> {
        let invalid = |reason: &'static str| InvalidCidr { quoted: escape_quoted(text.as_bytes()), reason };
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| invalid("not an IPv4 or IPv6 address"))?;
        let max_prefix = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max_prefix,
            Some(digits) => parse_prefix(digits).filter(|prefix| *prefix <= max_prefix).ok_or_else(|| {
                invalid(if address.is_ipv4() {
                    "prefix length must be 0 to 32"
                } else {
                    "prefix length must be 0 to 128"
                })
            })?,
        };
        let cidr = match address {
            IpAddr::V4(v4) => Self::V4 { network: u32::from(v4), prefix },
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                // ::ffff:a.b.c.d/96+n is the IPv4 range a.b.c.d/n.
                Some(v4) if prefix >= 96 => Self::V4 { network: u32::from(v4), prefix: prefix - 96 },
                _ => Self::V6 { network: u128::from(v6), prefix },
            },
        };
        if cidr.host_bits_set() {
            return Err(invalid("host bits are set below the prefix length"));
        }
        Ok(cidr)
    }

    /// Whether `address` lies in this network (a mapped IPv6 address counts as IPv4).
    pub fn contains(&self, address: IpAddr) -> bool {
        match (*self, canonical(address)) {
            (Self::V4 { network, prefix }, IpAddr::V4(v4)) => u32::from(v4) & mask_v4(prefix) == network,
            (Self::V6 { network, prefix }, IpAddr::V6(v6)) => u128::from(v6) & mask_v6(prefix) == network,
            _ => false,
        }
    }

    fn host_bits_set(&self) -> bool {
        match *self {
            Self::V4 { network, prefix } => network & !mask_v4(prefix) != 0,
            Self::V6 { network, prefix } => network & !mask_v6(prefix) != 0,
        }
    }
}

impl TryFrom<String> for Cidr {
    type Error = InvalidCidr;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::V4 { network, prefix } => write!(f, "{}/{prefix}", Ipv4Addr::from(network)),
            Self::V6 { network, prefix } => write!(f, "{}/{prefix}", Ipv6Addr::from(network)),
        }
    }
}

/// Why a `trusted_sources` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidCidr {
    quoted: String,
    reason: &'static str,
}

impl fmt::Display for InvalidCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid CIDR {}: {}", self.quoted, self.reason)
    }
}

/// Whether `address` is in any of `ranges`.
pub fn is_trusted(ranges: &[Cidr], address: IpAddr) -> bool {
    ranges.iter().any(|range| range.contains(address))
}

/// The IP of Envoy's `source.address` property: `1.2.3.4:80`, `[::1]:80`, or an address
/// without port. Anything else (a pipe path, a zone index, garbage) is `None`: untrusted.
pub fn parse_source_address(value: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(value).ok()?;
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    if let Ok(address) = text.parse::<IpAddr>() {
        return Some(address);
    }
    let bracketed = text.strip_prefix('[')?.strip_suffix(']')?;
    bracketed.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// Digits only (no sign, no spaces), at most three of them.
fn parse_prefix(digits: &str) -> Option<u8> {
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn cidr(text: &str) -> Cidr {
        Cidr::parse(text).unwrap()
    }

    #[test]
    fn ipv4_ranges_match_inside_only() {
        let range = cidr("10.0.0.0/8");
        assert!(range.contains(ip("10.0.0.0")));
        assert!(range.contains(ip("10.255.255.255")));
        assert!(!range.contains(ip("11.0.0.0")));
        assert!(!range.contains(ip("9.255.255.255")));
        let range = cidr("192.168.1.128/25");
        assert!(range.contains(ip("192.168.1.200")));
        assert!(!range.contains(ip("192.168.1.127")));
    }

    #[test]
    fn ipv6_ranges_match_inside_only() {
        let range = cidr("2001:db8::/32");
        assert!(range.contains(ip("2001:db8::1")));
        assert!(range.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(!range.contains(ip("2001:db9::")));
        assert!(!range.contains(ip("10.0.0.1")));
    }

    #[test]
    fn families_never_cross() {
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
        assert!(!cidr("::/0").contains(ip("10.0.0.1")));
    }

    #[test]
    fn zero_prefixes_match_the_whole_family() {
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.7")));
        assert!(cidr("0.0.0.0/0").contains(ip("255.255.255.255")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        assert!(cidr("::/0").contains(ip("::")));
    }

    #[test]
    fn full_prefixes_match_one_address() {
        let host = cidr("203.0.113.7/32");
        assert!(host.contains(ip("203.0.113.7")));
        assert!(!host.contains(ip("203.0.113.6")));
        assert!(!host.contains(ip("203.0.113.8")));
        let host = cidr("2001:db8::7/128");
        assert!(host.contains(ip("2001:db8::7")));
        assert!(!host.contains(ip("2001:db8::6")));
    }

    #[test]
    fn bare_addresses_are_single_hosts() {
        assert_eq!(cidr("203.0.113.7"), Cidr::V4 { network: 0xcb00_7107, prefix: 32 });
        assert_eq!(cidr("::1"), Cidr::V6 { network: 1, prefix: 128 });
        assert!(!cidr("::1").contains(ip("::2")));
    }

    #[test]
    fn mapped_sources_match_ipv4_ranges() {
        let range = cidr("10.0.0.0/8");
        assert!(range.contains(ip("::ffff:10.1.2.3")));
        assert!(!range.contains(ip("::ffff:11.1.2.3")));
    }

    #[test]
    fn mapped_ranges_become_ipv4_ranges() {
        assert_eq!(cidr("::ffff:10.0.0.0/104"), cidr("10.0.0.0/8"));
        assert_eq!(cidr("::ffff:10.1.2.3"), cidr("10.1.2.3/32"));
        assert!(cidr("::ffff:10.0.0.0/104").contains(ip("10.9.9.9")));
    }

    #[test]
    fn prefix_bounds_are_enforced() {
        assert!(Cidr::parse("10.0.0.0/32").is_ok());
        assert!(Cidr::parse("::/128").is_ok());
        let error = Cidr::parse("10.0.0.0/33").unwrap_err().to_string();
        assert_eq!(error, r#"invalid CIDR "10.0.0.0/33": prefix length must be 0 to 32"#);
        let error = Cidr::parse("::/129").unwrap_err().to_string();
        assert!(error.contains("0 to 128"), "{error}");
    }

    #[test]
    fn malformed_ranges_are_refused() {
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "10.0.0.0/-1",
            "10.0.0.0/0008",
            "10.0.0.0/8/8",
            "10.0.0/8",
            "10.0.0.256/32",
            "010.0.0.0/8",
            " 10.0.0.0/8",
            "10.0.0.0/8 ",
            "fe80::1%eth0/128",
            "[::1]/128",
            "localhost",
            "2001:db8::g/32",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn host_bits_are_refused() {
        let error = Cidr::parse("10.1.2.3/8").unwrap_err().to_string();
        assert!(error.contains("host bits"), "{error}");
        assert!(Cidr::parse("2001:db8::1/32").is_err());
        assert!(Cidr::parse("0.0.0.1/0").is_err());
    }

    #[test]
    fn error_escapes_the_input() {
        let error = Cidr::parse("10.0.0.0/8\n").unwrap_err().to_string();
        assert!(error.starts_with(r#"invalid CIDR "10.0.0.0/8\n""#), "{error}");
    }

    #[test]
    fn display_round_trips() {
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("2001:db8::/32").to_string(), "2001:db8::/32");
    }

    #[test]
    fn source_addresses_with_and_without_port() {
        assert_eq!(parse_source_address(b"1.2.3.4:80"), Some(ip("1.2.3.4")));
        assert_eq!(parse_source_address(b"[::1]:80"), Some(ip("::1")));
        assert_eq!(parse_source_address(b"[2001:db8::1]:443"), Some(ip("2001:db8::1")));
        assert_eq!(parse_source_address(b"::1"), Some(ip("::1")));
        assert_eq!(parse_source_address(b"1.2.3.4"), Some(ip("1.2.3.4")));
        assert_eq!(parse_source_address(b"[::1]"), Some(ip("::1")));
        assert_eq!(parse_source_address(b"[::ffff:10.0.0.1]:8080"), Some(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn unparsable_sources_are_none() {
        for bad in [
            &b""[..],
            b"/var/run/envoy.sock",
            b"1.2.3.4:",
            b"1.2.3.4:99999",
            b"[::1",
            b"::1]:80",
            b"[1.2.3.4]:80",
            b"[fe80::1%eth0]:80",
            b"\xff\xfe",
            b"example.com:80",
        ] {
            assert_eq!(parse_source_address(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn trust_needs_a_matching_range() {
        let ranges = [cidr("10.0.0.0/8"), cidr("2001:db8::/32")];
        assert!(is_trusted(&ranges, ip("10.2.3.4")));
        assert!(is_trusted(&ranges, ip("2001:db8::5")));
        assert!(is_trusted(&ranges, ip("::ffff:10.2.3.4")));
        assert!(!is_trusted(&ranges, ip("203.0.113.7")));
        assert!(!is_trusted(&ranges, ip("2001:db9::5")));
        assert!(!is_trusted(&[], ip("10.2.3.4")));
    }

    #[test]
    fn masks_at_the_edges() {
        assert_eq!(mask_v4(0), 0);
        assert_eq!(mask_v4(1), 0x8000_0000);
        assert_eq!(mask_v4(32), u32::MAX);
        assert_eq!(mask_v6(0), 0);
        assert_eq!(mask_v6(128), u128::MAX);
        assert_eq!(mask_v6(64), u128::MAX << 64);
    }
}
