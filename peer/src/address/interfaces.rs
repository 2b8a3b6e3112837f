//! The node's own interface addresses: which one is its internal address,
//! and a fingerprint of them all so a change of network is noticed.
use std::net::IpAddr;

use super::classify::{AddressClass, classify};
use crate::config::IpProtocol;

/// (interface name, address) for every address on an interface that is up.
pub fn list() -> Vec<(String, IpAddr)> {
    if_addrs::get_if_addrs()
        .map(|v| {
            v.into_iter()
                // Addresses on a downed interface cannot carry traffic.
                .filter(|i| i.is_oper_up() || i.is_loopback())
                .map(|i| (i.name.clone(), i.ip()))
                .collect()
        })
        .unwrap_or_default()
}

pub fn family_matches(ip: IpAddr, preferred: IpProtocol) -> bool {
    ip.is_ipv6() == (preferred == IpProtocol::IPv6)
}

/// The internal address, as the design's step 1 picks it: the bound address
/// when the listener is bound to one (the node is reachable on nothing
/// else), otherwise a non-loopback, non-link-local interface address of the
/// preferred family, a public one before a private one. Falls back to the
/// other family, then to loopback, so the node always has something to say.
pub fn choose_internal(
    addrs: &[(String, IpAddr)],
    bound: Option<IpAddr>,
    preferred: IpProtocol,
) -> IpAddr {
    if let Some(b) = bound.filter(|b| !b.is_unspecified()) {
        return b;
    }
    let usable = |ip: &IpAddr| {
        !matches!(
            classify(*ip),
            AddressClass::Loopback
                | AddressClass::LinkLocal
                | AddressClass::Unspecified
                | AddressClass::Multicast
        )
    };
    let candidates: Vec<IpAddr> = addrs.iter().map(|(_, ip)| *ip).filter(usable).collect();
    let pick = |want_family: bool| {
        let in_family = |ip: &&IpAddr| !want_family || family_matches(**ip, preferred);
        candidates
            .iter()
            .filter(in_family)
            .find(|ip| classify(**ip).is_public())
            .or_else(|| candidates.iter().find(in_family))
            .copied()
    };
    pick(true)
        .or_else(|| pick(false))
        .unwrap_or(match preferred {
            IpProtocol::IPv4 => IpAddr::from([127, 0, 0, 1]),
            IpProtocol::IPv6 => IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        })
}

/// An order-independent summary of the interface addresses; when it
/// changes, the network changed and the external address is looked up again.
pub fn fingerprint(addrs: &[(String, IpAddr)]) -> Vec<(String, IpAddr)> {
    let mut v: Vec<(String, IpAddr)> = addrs
        .iter()
        .filter(|(_, ip)| !ip.is_loopback())
        .cloned()
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Whether `ip` is one of this host's own addresses: a STUN server that
/// sees one of them means there is no NAT on the way.
pub fn is_local(addrs: &[(String, IpAddr)], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    addrs.iter().any(|(_, a)| *a == ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[(&str, &str)]) -> Vec<(String, IpAddr)> {
        list.iter()
            .map(|(n, a)| (n.to_string(), a.parse().unwrap()))
            .collect()
    }

    #[test]
    fn picks_non_loopback_non_link_local_of_preferred_family_public_first() {
        let a = addrs(&[
            ("lo", "127.0.0.1"),
            ("eth0", "fe80::1"),
            ("eth0", "169.254.1.1"),
            ("eth0", "10.0.0.5"),
            ("eth1", "198.18.0.9"),
            ("eth1", "2a00::5"),
        ]);
        assert_eq!(
            choose_internal(&a, None, IpProtocol::IPv4),
            "198.18.0.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            choose_internal(&a, None, IpProtocol::IPv6),
            "2a00::5".parse::<IpAddr>().unwrap()
        );
        let private_only = addrs(&[("lo", "127.0.0.1"), ("eth0", "10.0.0.5")]);
        assert_eq!(
            choose_internal(&private_only, None, IpProtocol::IPv6),
            "10.0.0.5".parse::<IpAddr>().unwrap(),
            "falls back to the other family"
        );
        assert_eq!(
            choose_internal(&addrs(&[("lo", "127.0.0.1")]), None, IpProtocol::IPv4),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_bound_address_wins() {
        let a = addrs(&[("eth0", "10.0.0.5")]);
        let bound = "10.0.0.7".parse().ok();
        assert_eq!(choose_internal(&a, bound, IpProtocol::IPv4), bound.unwrap());
        let any = "0.0.0.0".parse().ok();
        assert_eq!(
            choose_internal(&a, any, IpProtocol::IPv4),
            "10.0.0.5".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn fingerprint_ignores_order_and_loopback() {
        let a = addrs(&[("lo", "127.0.0.1"), ("b", "10.0.0.2"), ("a", "10.0.0.1")]);
        let b = addrs(&[("a", "10.0.0.1"), ("b", "10.0.0.2")]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        let c = addrs(&[("a", "10.0.0.1"), ("b", "10.0.0.3")]);
        assert_ne!(fingerprint(&a), fingerprint(&c));
        assert!(is_local(&a, "::ffff:10.0.0.2".parse().unwrap()));
        assert!(!is_local(&a, "10.0.0.9".parse().unwrap()));
    }
}
