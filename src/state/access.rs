//! Which addresses may connect to the server: `--allow` and `--deny`
//! networks. A refused connection is closed at once in the accepting thread:
//! it costs no thread, no handshake and no place in the line.

use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct Access {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

impl Access {
    /// With no `allow`, every address not denied may connect; otherwise only
    /// those in an allowed network. A denial wins over an allowance.
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>) -> Self {
        Self { allow, deny }
    }

    pub(crate) fn permits(&self, address: IpAddr) -> bool {
        // A dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d.
        let address = address.to_canonical();
        let within = |nets: &[IpNet]| nets.iter().any(|net| net.contains(&address));
        !within(&self.deny) && (self.allow.is_empty() || within(&self.allow))
    }
}

/// Parses `--allow`/`--deny`: a network (`10.0.0.0/8`, `fd00::/8`) or a single
/// address (`192.0.2.7`, `::1`).
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        "expected an address or a network, such as 192.0.2.7, 10.0.0.0/8 or fd00::/8".to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| parse_network(n).unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn nothing_given_lets_everyone_in() {
        let access = Access::default();
        assert!(access.permits(ip("203.0.113.9")));
        assert!(access.permits(ip("::1")));
    }

    #[test]
    fn allow_lists_the_only_ones_let_in_and_deny_wins() {
        let access = Access::new(nets(&["10.0.0.0/8", "::1"]), nets(&["10.9.0.0/16"]));
        assert!(access.permits(ip("10.1.2.3")));
        assert!(!access.permits(ip("10.9.1.1")));
        assert!(!access.permits(ip("192.168.1.1")));
        assert!(access.permits(ip("::1")));
        assert!(!access.permits(ip("::2")));
        // IPv4 seen through a dual-stack socket.
        assert!(access.permits(ip("::ffff:10.1.2.3")));
        assert!(!access.permits(ip("::ffff:10.9.1.1")));
    }

    #[test]
    fn deny_alone_keeps_out_only_those() {
        let access = Access::new(vec![], nets(&["127.0.0.1"]));
        assert!(!access.permits(ip("127.0.0.1")));
        assert!(access.permits(ip("127.0.0.2")));
    }

    #[test]
    fn networks_are_parsed_strictly() {
        assert_eq!(
            parse_network("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(parse_network("::1").unwrap().to_string(), "::1/128");
        for bad in ["", "10.0.0.0/33", "host", "10.0.0"] {
            assert!(parse_network(bad).is_err(), "{bad}");
        }
    }
}
