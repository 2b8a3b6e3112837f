//! Which addresses other peers can reach directly: public versus the
//! special-purpose ranges (RFC 1918, RFC 4193, RFC 6598, loopback,
//! link-local, documentation and the rest of the IANA special registries).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// The range an address falls in. Only `Public` is reachable from anywhere;
/// every other class needs a NAT or a shared network to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressClass {
    Public,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16), and deprecated IPv6 site-local fec0::/10.
    Private,
    /// RFC 4193 fc00::/7.
    UniqueLocal,
    /// RFC 6598 100.64/10, the carrier-grade NAT range: behind a provider's NAT.
    SharedAddressSpace,
    Loopback,
    /// 169.254/16 and fe80::/10.
    LinkLocal,
    /// RFC 5737 TEST-NETs, RFC 3849 2001:db8::/32 and RFC 9637 3fff::/20.
    Documentation,
    Unspecified,
    Multicast,
    /// Everything else no host may use: 0/8, 192.0.0/24, 240/4 and the
    /// broadcast address, IPv6 discard-only 100::/64.
    Reserved,
}

impl AddressClass {
    pub fn is_public(self) -> bool {
        self == AddressClass::Public
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Private => "private",
            AddressClass::UniqueLocal => "unique-local",
            AddressClass::SharedAddressSpace => "shared-address-space",
            AddressClass::Loopback => "loopback",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Documentation => "documentation",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Multicast => "multicast",
            AddressClass::Reserved => "reserved",
        }
    }

    /// Whether a peer could ever dial this address: the classes that name
    /// one host on some network. Documentation addresses are kept out
    /// because they are never assigned, so a config or server naming one is
    /// wrong.
    pub fn is_dialable(self) -> bool {
        matches!(
            self,
            AddressClass::Public
                | AddressClass::Private
                | AddressClass::UniqueLocal
                | AddressClass::SharedAddressSpace
                | AddressClass::Loopback
                | AddressClass::LinkLocal
        )
    }
}

impl std::fmt::Display for AddressClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            // ::ffff:a.b.c.d is an IPv4 host seen through a dual-stack socket.
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    let table: [([u8; 4], u32, AddressClass); 14] = [
        ([0, 0, 0, 0], 32, Unspecified),
        ([255, 255, 255, 255], 32, Reserved),
        ([0, 0, 0, 0], 8, Reserved),
        ([10, 0, 0, 0], 8, Private),
        ([172, 16, 0, 0], 12, Private),
        ([192, 168, 0, 0], 16, Private),
        ([100, 64, 0, 0], 10, SharedAddressSpace),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([192, 0, 2, 0], 24, Documentation),
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([192, 0, 0, 0], 24, Reserved),
        ([224, 0, 0, 0], 4, Multicast),
    ];
    if let Some((_, _, class)) = table.iter().find(|(net, p, _)| in_v4(ip, *net, *p)) {
        return *class;
    }
    if in_v4(ip, [240, 0, 0, 0], 4) {
        return Reserved;
    }
    // 198.18.0.0/15 (RFC 2544 benchmarking) deliberately counts as public:
    // it exists for test labs that stand in for the internet, which is how
    // the NAT tests use it, and it never appears on a real host.
    Public
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    (u128::from(ip) & mask) == (u128::from(Ipv6Addr::from(net)) & mask)
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    let table: [([u16; 8], u32, AddressClass); 10] = [
        ([0, 0, 0, 0, 0, 0, 0, 0], 128, Unspecified),
        ([0, 0, 0, 0, 0, 0, 0, 1], 128, Loopback),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, LinkLocal),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, Private),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, UniqueLocal),
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, Documentation),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Documentation),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Multicast),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, Reserved),
        // The rest of ::/8 (IPv4-compatible, unassigned) is no host's.
        ([0, 0, 0, 0, 0, 0, 0, 0], 8, Reserved),
    ];
    table
        .iter()
        .find(|(net, p, _)| in_v6(ip, *net, *p))
        .map_or(Public, |(_, _, class)| *class)
}

#[cfg(test)]
mod tests {
    use super::AddressClass::*;
    use super::*;

    fn c(s: &str) -> AddressClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn ipv4_ranges() {
        for (ip, class) in [
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("172.32.0.1", Public),
            ("192.168.1.1", Private),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.255", SharedAddressSpace),
            ("100.128.0.1", Public),
            ("127.0.0.1", Loopback),
            ("169.254.10.1", LinkLocal),
            ("192.0.2.7", Documentation),
            ("198.51.100.7", Documentation),
            ("203.0.113.7", Documentation),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Reserved),
            ("192.0.0.9", Reserved),
            ("240.0.0.1", Reserved),
            ("255.255.255.255", Reserved),
            ("224.0.0.251", Multicast),
            ("198.18.0.1", Public),
            ("8.8.8.8", Public),
            ("11.0.0.1", Public),
        ] {
            assert_eq!(c(ip), class, "{ip}");
        }
    }

    #[test]
    fn ipv6_ranges() {
        for (ip, class) in [
            ("::", Unspecified),
            ("::1", Loopback),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", Private),
            ("fd12:3456::1", UniqueLocal),
            ("fc00::1", UniqueLocal),
            ("2001:db8::1", Documentation),
            ("3fff:fff::1", Documentation),
            ("ff02::1", Multicast),
            ("100::1", Reserved),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:8.8.4.4", Public),
            ("2001:4860::8888", Public),
            ("2a00:1450::1", Public),
        ] {
            assert_eq!(c(ip), class, "{ip}");
        }
    }

    #[test]
    fn only_public_is_public_and_documentation_is_not_dialable() {
        assert!(Public.is_public() && !Private.is_public() && !SharedAddressSpace.is_public());
        assert!(Private.is_dialable() && !Documentation.is_dialable() && !Multicast.is_dialable());
    }
}
