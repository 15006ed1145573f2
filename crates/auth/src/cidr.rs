//! CIDR handling for the `*_bound_cidrs` and `cidr_list` constraints, on top of `ipnet`.
//!
//! Vault distinguishes two kinds of lists: "CIDR blocks" (`secret_id_bound_cidrs`,
//! `cidr_list`: every entry must be `addr/prefix`) and "addresses" (`token_bound_cidrs`: a bare
//! IP or a block; a single-host block is shown as the bare IP, as Vault's sockaddr does).

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// Parses a bare IP (as a host block) or a CIDR block.
pub fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    if s.contains('/') {
        s.parse::<IpNet>().ok()
    } else {
        s.parse::<IpAddr>().ok().map(IpNet::from)
    }
}

/// Validates a list of CIDR blocks (`addr/prefix` only). The error names the bad entry.
pub fn validate_blocks(list: &[String]) -> Result<(), String> {
    for s in list {
        if !s.contains('/') || s.trim().parse::<IpNet>().is_err() {
            return Err(format!("invalid CIDR address: {s}"));
        }
    }
    Ok(())
}

/// Parses `token_bound_cidrs`-style addresses (IPs or blocks) into their display form.
pub fn parse_addrs(list: &[String]) -> Result<Vec<String>, String> {
    list.iter()
        .map(|s| {
            let net = parse_net(s).ok_or_else(|| {
                format!("error parsing address {s:?}: Unable to convert {s:?} to an IPv4 or IPv6 address, or a UNIX Socket")
            })?;
            Ok(if net.prefix_len() == net.max_prefix_len() {
                net.addr().to_string()
            } else {
                net.to_string()
            })
        })
        .collect()
}

/// The client's IP from a remote address (`ip`, `ip:port` or `[ip]:port`); IPv4-mapped IPv6
/// addresses become IPv4.
pub fn remote_ip(addr: &str) -> Option<IpAddr> {
    let addr = addr.trim();
    let ip = addr
        .parse::<IpAddr>()
        .ok()
        .or_else(|| addr.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    })
}

/// Whether `remote` (a remote address as the request carries it) falls in any entry of `list`.
/// An unparseable remote address or entry matches nothing.
pub fn remote_in(remote: &str, list: &[String]) -> bool {
    let Some(ip) = remote_ip(remote) else {
        return false;
    };
    list.iter()
        .filter_map(|s| parse_net(s))
        .any(|net| net.contains(&ip))
}

/// Whether every block of `inner` lies inside some block of `outer` (an empty `outer` allows
/// anything). Bare IPs in `outer` are host blocks.
pub fn is_subset(outer: &[String], inner: &[String]) -> bool {
    if outer.is_empty() {
        return true;
    }
    let outer: Vec<IpNet> = outer.iter().filter_map(|s| parse_net(s)).collect();
    inner.iter().all(|s| match parse_net(s) {
        Some(net) => outer.iter().any(|o| o.contains(&net)),
        None => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn addresses_and_blocks() {
        assert_eq!(
            parse_addrs(&v(&[
                "10.0.0.1",
                "10.0.0.0/8",
                "1.2.3.4/32",
                "::1",
                "2001:db8::/32"
            ]))
            .unwrap(),
            v(&["10.0.0.1", "10.0.0.0/8", "1.2.3.4", "::1", "2001:db8::/32"])
        );
        assert!(parse_addrs(&v(&["bogus"])).is_err());
        assert!(validate_blocks(&v(&["10.0.0.0/8", "10.0.0.1/8"])).is_ok());
        assert_eq!(
            validate_blocks(&v(&["10.0.0.1"])).unwrap_err(),
            "invalid CIDR address: 10.0.0.1"
        );
        assert!(validate_blocks(&v(&["garbage/8"])).is_err());
    }

    #[test]
    fn remote_matching() {
        let list = v(&["10.0.0.0/8", "127.0.0.1"]);
        assert!(remote_in("10.1.2.3", &list));
        assert!(remote_in("127.0.0.1:5555", &list));
        assert!(remote_in("::ffff:10.9.9.9", &list));
        assert!(!remote_in("11.0.0.1", &list));
        assert!(!remote_in("not an ip", &list));
        assert!(remote_in("[::1]:80", &v(&["::1/128"])));
        assert!(!remote_in("::1", &list));
    }

    #[test]
    fn subsets() {
        assert!(is_subset(&[], &v(&["1.2.3.4/32"])));
        assert!(is_subset(
            &v(&["10.0.0.0/8"]),
            &v(&["10.1.0.0/16", "10.2.3.4/32"])
        ));
        assert!(!is_subset(&v(&["10.0.0.0/8"]), &v(&["127.0.0.1/32"])));
        assert!(is_subset(&v(&["127.0.0.1"]), &v(&["127.0.0.1/32"])));
        assert!(!is_subset(&v(&["10.1.0.0/16"]), &v(&["10.0.0.0/8"])));
    }
}
