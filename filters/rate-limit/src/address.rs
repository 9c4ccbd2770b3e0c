//! The client address: Envoy's `source.address`, or the `X-Forwarded-For` entry written by the
//! nearest trusted proxy.
//!
//! `X-Forwarded-For` is a list every proxy appends to, so only its right end is trustworthy:
//! with `trusted_hops: N` (N proxies in front of Envoy, each appending the address it saw) the
//! client is the N-th entry from the right. Everything to the left of it was written by the
//! client, who can put anything there; reading the left-most entry would let any client choose
//! its own bucket.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The request header proxies append the client address to.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The IP of Envoy's `source.address` property: `1.2.3.4:80`, `[::1]:80`, or an address
/// without port. Anything else (a pipe path, garbage) is `None`.
pub fn parse_source_address(value: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(value).ok()?;
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(canonical(socket.ip()));
    }
    parse_bare_or_bracketed(text)
}

/// The client address from an `X-Forwarded-For` value and the number of trusted proxies that
/// appended to it: the `trusted_hops`-th entry from the right. `None` when the list is shorter
/// (the client did not come through all the trusted proxies, or the header is missing its
/// entries) or that entry is not an IP address (optionally with a port). Only the last
/// `trusted_hops` entries are looked at, however long the header is.
pub fn client_from_forwarded_for(value: &[u8], trusted_hops: u32) -> Option<IpAddr> {
    let index = usize::try_from(trusted_hops.checked_sub(1)?).ok()?;
    let entry = value.rsplit(|byte| *byte == b',').nth(index)?;
    let text = std::str::from_utf8(entry).ok()?.trim_matches([' ', '\t']);
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(canonical(socket.ip()));
    }
    parse_bare_or_bracketed(text)
}

fn parse_bare_or_bracketed(text: &str) -> Option<IpAddr> {
    if let Ok(address) = text.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    let bracketed = text.strip_prefix('[')?.strip_suffix(']')?;
    bracketed.parse::<Ipv6Addr>().ok().map(|address| canonical(IpAddr::V6(address)))
}

/// An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) is the IPv4 client: one bucket for both forms.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn source_address_forms() {
        assert_eq!(parse_source_address(b"203.0.113.7:40000"), Some(ip("203.0.113.7")));
        assert_eq!(parse_source_address(b"[2001:db8::1]:443"), Some(ip("2001:db8::1")));
        assert_eq!(parse_source_address(b"2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_source_address(b"10.0.0.1"), Some(ip("10.0.0.1")));
        assert_eq!(parse_source_address(b"[::ffff:10.0.0.1]"), Some(ip("10.0.0.1")));
        assert_eq!(parse_source_address(b"/var/run/envoy.sock"), None);
        assert_eq!(parse_source_address(b"\xff\xfe"), None);
        assert_eq!(parse_source_address(b""), None);
    }

    #[test]
    fn one_trusted_hop_takes_the_right_most_entry() {
        assert_eq!(client_from_forwarded_for(b"198.51.100.9", 1), Some(ip("198.51.100.9")));
        assert_eq!(client_from_forwarded_for(b"1.1.1.1, 198.51.100.9", 1), Some(ip("198.51.100.9")));
    }

    #[test]
    fn spoofed_left_entries_are_ignored() {
        // The client wrote "6.6.6.6, 7.7.7.7"; the trusted proxy appended what it saw.
        let header = b"6.6.6.6, 7.7.7.7, 198.51.100.9";
        assert_eq!(client_from_forwarded_for(header, 1), Some(ip("198.51.100.9")));
        // Two trusted proxies: the second appended the first's address.
        assert_eq!(client_from_forwarded_for(b"6.6.6.6, 198.51.100.9, 10.0.0.2", 2), Some(ip("198.51.100.9")));
    }

    #[test]
    fn short_or_invalid_lists_have_no_client() {
        assert_eq!(client_from_forwarded_for(b"198.51.100.9", 2), None, "fewer entries than trusted hops");
        assert_eq!(client_from_forwarded_for(b"", 1), None);
        assert_eq!(client_from_forwarded_for(b"1.1.1.1, not-an-ip", 1), None);
        assert_eq!(client_from_forwarded_for(b"1.1.1.1,", 1), None, "empty right-most entry");
        assert_eq!(client_from_forwarded_for(b"1.1.1.1, 2.2.2.2", 0), None, "zero hops is not XFF");
        assert_eq!(client_from_forwarded_for(b"unknown", 1), None);
    }

    #[test]
    fn entries_with_ports_spaces_and_v6() {
        assert_eq!(client_from_forwarded_for(b"a,\t198.51.100.9:1234 ", 1), Some(ip("198.51.100.9")));
        assert_eq!(client_from_forwarded_for(b"x, [2001:db8::7]:80", 1), Some(ip("2001:db8::7")));
        assert_eq!(client_from_forwarded_for(b"x, 2001:db8::7", 1), Some(ip("2001:db8::7")));
        assert_eq!(client_from_forwarded_for(b"x, ::ffff:198.51.100.9", 1), Some(ip("198.51.100.9")));
    }

    #[test]
    fn only_the_right_end_of_a_huge_header_is_read() {
        let mut header = "9.9.9.9, ".repeat(10_000).into_bytes();
        header.extend_from_slice(b"198.51.100.9");
        assert_eq!(client_from_forwarded_for(&header, 1), Some(ip("198.51.100.9")));
        assert_eq!(client_from_forwarded_for(&header, 3), Some(ip("9.9.9.9")));
    }
}
