//! NAT detection from STUN answers. The outside view of one local UDP port
//! is asked of the configured servers in order: the first answer is the
//! external address, and a second server's answer, from the same socket,
//! shows the mapping behaviour (RFC 4787): the same reflexive address means
//! endpoint-independent mapping, a different one means endpoint-dependent
//! ("symmetric") mapping.
use std::net::SocketAddr;

use super::classify::classify;
use super::stun::StunClient;
use super::{Attempt, Mapping, Method, NatType};

pub fn mapping(first: SocketAddr, second: Option<SocketAddr>) -> Mapping {
    match second {
        None => Mapping::NotTested,
        Some(s) if s == first => Mapping::EndpointIndependent,
        Some(_) => Mapping::EndpointDependent,
    }
}

/// `mapped_is_local`: the reflexive IP is one of the host's own addresses.
pub fn nat_type(mapped_is_local: bool, mapping: Mapping) -> NatType {
    match (mapped_is_local, mapping) {
        (true, _) => NatType::None,
        (false, Mapping::EndpointIndependent) => NatType::EndpointIndependent,
        (false, Mapping::EndpointDependent) => NatType::Symmetric,
        (false, Mapping::NotTested | Mapping::None) => NatType::MappingUnknown,
    }
}

/// Asks `servers` in order until one answers, then goes on until a second
/// server (at another address) answers, for the mapping test. Returns the
/// first reflexive address and the mapping; every server asked is recorded
/// in `attempts`.
pub async fn probe(
    client: &StunClient,
    servers: &[String],
    attempts: &mut Vec<Attempt>,
) -> Option<(SocketAddr, Mapping)> {
    let mut first: Option<(SocketAddr, SocketAddr)> = None;
    for server in servers {
        let mut attempt = Attempt {
            method: Method::Stun,
            target: server.clone(),
            answer: None,
            error: None,
        };
        let result = async {
            let addr = client.resolve(server).await?;
            if first.is_some_and(|(server_addr, _)| server_addr == addr) {
                // The same server twice says nothing about the mapping.
                return Ok(None);
            }
            client.query(addr).await.map(|m| Some((addr, m)))
        }
        .await;
        match result {
            Ok(None) => continue,
            Ok(Some((server_addr, mapped))) => {
                attempt.answer = Some(mapped.to_string());
                let class = classify(mapped.ip());
                if !class.is_dialable() {
                    attempt.error = Some(format!("reported a {class} address, ignored"));
                    attempts.push(attempt);
                    continue;
                }
                attempts.push(attempt);
                match first {
                    None => first = Some((server_addr, mapped)),
                    Some((_, m1)) => return Some((m1, mapping(m1, Some(mapped)))),
                }
            }
            Err(e) => {
                attempt.error = Some(super::attempt_error(&e));
                attempts.push(attempt);
            }
        }
    }
    first.map(|(_, m)| (m, Mapping::NotTested))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn mapping_compares_what_two_servers_saw() {
        let m = a("198.18.0.1:40000");
        assert_eq!(mapping(m, None), Mapping::NotTested);
        assert_eq!(mapping(m, Some(m)), Mapping::EndpointIndependent);
        assert_eq!(
            mapping(m, Some(a("198.18.0.1:40001"))),
            Mapping::EndpointDependent
        );
        assert_eq!(
            mapping(m, Some(a("198.18.0.2:40000"))),
            Mapping::EndpointDependent
        );
    }

    #[test]
    fn nat_type_from_locality_and_mapping() {
        assert_eq!(nat_type(true, Mapping::EndpointDependent), NatType::None);
        assert_eq!(
            nat_type(false, Mapping::EndpointIndependent),
            NatType::EndpointIndependent
        );
        assert_eq!(
            nat_type(false, Mapping::EndpointDependent),
            NatType::Symmetric
        );
        assert_eq!(nat_type(false, Mapping::NotTested), NatType::MappingUnknown);
    }
}
