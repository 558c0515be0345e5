//! The network an address belongs to, for sharing places fairly between
//! networks rather than between addresses: one who attacks has a block of
//! addresses far more often than a single one (a cloud tenant's /24, an
//! IPv6 home or server's /64, where any of 2^64 addresses is its own), so
//! counting addresses would count nothing.
//!
//! An IPv4 address's network is its /24, an IPv6 address's its /64 (an
//! IPv4 address carried in IPv6, `::ffff:a.b.c.d`, is the IPv4 one). Why
//! these and not narrower: a /64 is the smallest block an IPv6 site is
//! given (RFC 6177), and ergo's connection limits count IPv6 by /64 too
//! (`cidr-len-ipv6: 64`); ergo counts IPv4 by /32 (ngircd too,
//! `MaxConnectionsIP`), but a /24 is what a hosting provider hands out and
//! moves between tenants, and what is at stake here is only a place held
//! by a connection that has said nothing, never one of a client that has
//! spoken. So grouping two people of one /24 costs little: a real client
//! speaks within a round trip of getting its place, and is then never
//! judged by its network again.

use std::net::IpAddr;

/// An address's network, comparable and hashable: an IPv4 /24 or an IPv6
/// /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Prefix {
    V4([u8; 3]),
    V6([u8; 8]),
}

impl Prefix {
    pub fn of(address: IpAddr) -> Self {
        match address.to_canonical() {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                Prefix::V4([a, b, c])
            }
            IpAddr::V6(v6) => {
                let mut first = [0u8; 8];
                first.copy_from_slice(&v6.octets()[..8]);
                Prefix::V6(first)
            }
        }
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Prefix::V4([a, b, c]) => write!(f, "{a}.{b}.{c}.0/24"),
            Prefix::V6(first) => {
                let mut octets = [0u8; 16];
                octets[..8].copy_from_slice(first);
                write!(f, "{}/64", std::net::Ipv6Addr::from(octets))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> Prefix {
        Prefix::of(text.parse().unwrap())
    }

    #[test]
    fn ipv4_addresses_are_grouped_by_24_and_ipv6_by_64() {
        assert_eq!(of("192.0.2.1"), of("192.0.2.254"));
        assert_ne!(of("192.0.2.1"), of("192.0.3.1"));
        assert_eq!(of("127.0.0.1"), of("127.0.0.2"));
        assert_ne!(of("127.0.0.1"), of("127.0.1.1"));
        assert_eq!(of("2001:db8:1:2::1"), of("2001:db8:1:2:ffff::9"));
        assert_ne!(of("2001:db8:1:2::1"), of("2001:db8:1:3::1"));
        // IPv4 in IPv6 is IPv4.
        assert_eq!(of("::ffff:192.0.2.7"), of("192.0.2.1"));
        assert_ne!(of("::1"), of("127.0.0.1"));
    }

    #[test]
    fn a_prefix_is_shown_as_its_network() {
        assert_eq!(of("192.0.2.77").to_string(), "192.0.2.0/24");
        assert_eq!(of("2001:db8:1:2:3:4:5:6").to_string(), "2001:db8:1:2::/64");
        assert_eq!(of("::ffff:10.1.2.3").to_string(), "10.1.2.0/24");
    }
}
