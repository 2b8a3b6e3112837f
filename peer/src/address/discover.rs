//! One discovery run: the design's steps 1-4, in order, each step's outcome
//! recorded so an operator can see why an address was (not) found.
use std::net::IpAddr;
use std::time::Duration;

use super::classify::{AddressClass, classify};
use super::interfaces;
use super::stun::{DEFAULT_RTO, StunClient};
use super::{AddressReport, Attempt, Mapping, Method, NatType, http, nat};
use crate::config::{IpProtocol, NetworkAddressConfig};

#[derive(Debug, Clone, Copy)]
pub struct DiscoverOptions {
    /// The listener's bound address; a specific one is the internal address.
    pub bound: Option<IpAddr>,
    /// Deadline per STUN server and per HTTP lookup service.
    pub timeout: Duration,
    /// Initial STUN retransmission timeout.
    pub rto: Duration,
}

impl DiscoverOptions {
    pub fn new(bound: Option<IpAddr>, timeout: Duration) -> Self {
        Self {
            bound,
            timeout,
            rto: DEFAULT_RTO,
        }
    }
}

pub async fn discover(cfg: &NetworkAddressConfig, opts: DiscoverOptions) -> AddressReport {
    let addrs = interfaces::list();
    let internal = interfaces::choose_internal(&addrs, opts.bound, cfg.preferred_protocol);
    let mut report = AddressReport::new(internal);

    if let Some(ext) = &cfg.external_address {
        match check_configured(ext, opts.timeout).await {
            Ok(()) => {
                return report.found(
                    ext.clone(),
                    Method::Config,
                    NatType::Unknown,
                    Mapping::NotTested,
                );
            }
            Err(why) => {
                let w = format!(
                    "NetworkAddress.ExternalAddress {ext:?} is not usable ({why}); discovering the address instead"
                );
                tracing::warn!("{w}");
                report.warnings.push(w);
            }
        }
    }

    match report.internal_class {
        AddressClass::Public => {
            let ip = internal.to_string();
            return report.found(ip, Method::Interface, NatType::None, Mapping::NotTested);
        }
        // Bound to loopback: only this host can connect, whatever the
        // outside sees, so there is nothing to look up.
        AddressClass::Loopback => return report,
        _ => {}
    }

    let local = opts.bound.filter(|b| !b.is_unspecified());
    let want_v6 = local.map_or(cfg.preferred_protocol == IpProtocol::IPv6, |l| l.is_ipv6());
    if !cfg.stun_servers.is_empty() {
        match StunClient::bind(local, cfg.preferred_protocol, opts.timeout).await {
            Ok(client) => {
                let client = client.with_rto(opts.rto);
                if let Some((mapped, mapping)) =
                    nat::probe(&client, &cfg.stun_servers, &mut report.attempts).await
                {
                    let nat = nat::nat_type(interfaces::is_local(&addrs, mapped.ip()), mapping);
                    let mapping = if nat == NatType::None {
                        Mapping::None
                    } else {
                        mapping
                    };
                    let ip = mapped.ip().to_string();
                    return report.found(ip, Method::Stun, nat, mapping);
                }
            }
            Err(e) => report.warnings.push(e.to_string()),
        }
    }

    if !cfg.http_lookup_services.is_empty() {
        match http::client(local, cfg.preferred_protocol, opts.timeout) {
            Ok(client) => {
                for url in &cfg.http_lookup_services {
                    let result = http::lookup(&client, url)
                        .await
                        .map_err(|e| super::attempt_error(&e));
                    let result = result.and_then(|ip| usable_answer(ip, want_v6));
                    let ok = result.as_ref().ok().copied();
                    report.attempts.push(Attempt {
                        method: Method::Http,
                        target: url.clone(),
                        answer: ok.map(|ip| ip.to_string()),
                        error: result.err(),
                    });
                    if let Some(ip) = ok {
                        // An HTTP answer shows the address, not the mapping.
                        let nat = if interfaces::is_local(&addrs, ip) {
                            NatType::None
                        } else {
                            NatType::MappingUnknown
                        };
                        return report.found(ip.to_string(), Method::Http, nat, Mapping::NotTested);
                    }
                }
            }
            Err(e) => report.warnings.push(e.to_string()),
        }
    }
    report
}

/// An address a lookup service reported, if peers could dial it.
fn usable_answer(ip: IpAddr, want_v6: bool) -> Result<IpAddr, String> {
    let class = classify(ip);
    if !class.is_dialable() || class == AddressClass::Loopback {
        return Err(format!("answered {ip}, a {class} address"));
    }
    if ip.is_ipv6() != want_v6 {
        return Err(format!(
            "answered {ip}, not of NetworkAddress.PreferredProtocol's family"
        ));
    }
    Ok(ip)
}

/// Why a configured ExternalAddress (already well-formed: validation saw
/// to that) cannot be advertised: an address no peer could dial, or a host
/// name that does not resolve.
pub async fn check_configured(ext: &str, timeout: Duration) -> Result<(), String> {
    if let Ok(ip) = ext.parse::<IpAddr>() {
        let class = classify(ip);
        return match class {
            AddressClass::Loopback | AddressClass::Unspecified => Err(format!(
                "a {class} address is not reachable from other hosts"
            )),
            c if !c.is_dialable() => Err(format!("a {class} address cannot be dialled")),
            _ => Ok(()),
        };
    }
    match tokio::time::timeout(timeout, tokio::net::lookup_host((ext, 0))).await {
        Err(_) => Err("the host name did not resolve in time".into()),
        Ok(Err(e)) => Err(format!("the host name does not resolve: {e}")),
        Ok(Ok(mut addrs)) => match addrs.next() {
            Some(_) => Ok(()),
            None => Err("the host name has no addresses".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn configured_address_checks() {
        let t = Duration::from_secs(2);
        assert_eq!(check_configured("198.18.0.1", t).await, Ok(()));
        assert_eq!(check_configured("10.0.0.1", t).await, Ok(()));
        assert_eq!(check_configured("localhost", t).await, Ok(()));
        for bad in ["127.0.0.1", "0.0.0.0", "::", "224.0.0.1", "192.0.2.1"] {
            assert!(check_configured(bad, t).await.is_err(), "{bad}");
        }
        assert!(check_configured("no-such-host.invalid", t).await.is_err());
    }

    #[test]
    fn lookup_answers_must_be_dialable_and_in_family() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(usable_answer(ip("198.18.0.1"), false).is_ok());
        assert!(usable_answer(ip("127.0.0.1"), false).is_err());
        assert!(usable_answer(ip("0.0.0.0"), false).is_err());
        assert!(usable_answer(ip("2a00::1"), false).is_err());
        assert!(usable_answer(ip("2a00::1"), true).is_ok());
    }
}
