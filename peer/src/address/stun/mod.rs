//! A STUN Binding client (RFC 8489 §6.2.1 over UDP). The codec is
//! `stun-rs`'s; what is ours is the transaction: a fresh random transaction
//! id per query, retransmission starting at `rto` and doubling, a deadline
//! per server, and ignoring whatever is not the answer to our request
//! (other sources, other transactions, malformed messages).
pub mod codec;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use stun_rs::TransactionId;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::config::IpProtocol;
use crate::{Error, Result};
use codec::{Reject, binding_request, parse_response};

/// RFC 8489's initial retransmission timeout.
pub const DEFAULT_RTO: Duration = Duration::from_millis(500);
/// RFC 8489's Rc: at most this many requests per transaction.
const MAX_TRANSMISSIONS: u32 = 7;
/// Big enough for any STUN message over UDP (RFC 8489 §6.1 keeps them
/// under the path MTU); larger datagrams are truncated and then rejected.
const RECV_BUFFER: usize = 1500;

/// One UDP socket, used for every server of one discovery, so that the
/// mappings two servers report can be compared (the NAT's mapping for this
/// one local port).
pub struct StunClient {
    socket: UdpSocket,
    family: IpProtocol,
    rto: Duration,
    timeout: Duration,
}

impl StunClient {
    /// Binds an ephemeral port on `local`, else on the unspecified address
    /// of `family`. A node bound to one address must ask from that address,
    /// or the servers would report the mapping of another one.
    pub async fn bind(
        local: Option<IpAddr>,
        family: IpProtocol,
        timeout: Duration,
    ) -> Result<Self> {
        let any: IpAddr = local.unwrap_or(match family {
            IpProtocol::IPv4 => Ipv4Addr::UNSPECIFIED.into(),
            IpProtocol::IPv6 => Ipv6Addr::UNSPECIFIED.into(),
        });
        let family = if any.is_ipv6() {
            IpProtocol::IPv6
        } else {
            IpProtocol::IPv4
        };
        let socket = UdpSocket::bind((any, 0))
            .await
            .map_err(|e| lookup_error("STUN socket", e))?;
        Ok(Self {
            socket,
            family,
            rto: DEFAULT_RTO,
            timeout,
        })
    }

    /// Overrides the initial retransmission timeout (tests shorten it).
    pub fn with_rto(mut self, rto: Duration) -> Self {
        self.rto = rto;
        self
    }

    pub fn local_port(&self) -> u16 {
        self.socket.local_addr().map_or(0, |a| a.port())
    }

    /// Resolves `HOST:PORT` to the first address of this client's family.
    pub async fn resolve(&self, server: &str) -> Result<SocketAddr> {
        let want_v6 = self.family == IpProtocol::IPv6;
        let found = tokio::time::timeout(self.timeout, tokio::net::lookup_host(server))
            .await
            .map_err(|_| lookup_error(server, "name resolution timed out"))?
            .map_err(|e| lookup_error(server, e))?
            .find(|a| a.is_ipv6() == want_v6);
        found.ok_or_else(|| {
            lookup_error(
                server,
                format!(
                    "no {:?} address (NetworkAddress.PreferredProtocol)",
                    self.family
                ),
            )
        })
    }

    /// Our reflexive address as `server` sees it.
    pub async fn query(&self, server: SocketAddr) -> Result<SocketAddr> {
        let tid = TransactionId::default();
        let request = binding_request(&tid);
        let deadline = Instant::now() + self.timeout;
        let mut next_send = Instant::now();
        let mut rto = self.rto;
        let mut sent = 0u32;
        let mut ignored = Ignored::default();
        let mut buf = vec![0u8; RECV_BUFFER];
        loop {
            if sent < MAX_TRANSMISSIONS && next_send < deadline && Instant::now() >= next_send {
                // A send error (no route yet, ICMP unreachable reported on
                // the socket) is like a lost datagram: retransmission covers it.
                if let Err(e) = self.socket.send_to(&request, server).await {
                    ignored.add(format!("send: {e}"));
                }
                sent += 1;
                next_send += rto;
                rto = rto.saturating_mul(2);
            }
            let wake = if sent < MAX_TRANSMISSIONS {
                next_send.min(deadline)
            } else {
                deadline
            };
            let received = tokio::time::timeout_at(wake, self.socket.recv_from(&mut buf)).await;
            match received {
                Err(_) if Instant::now() >= deadline => {
                    return Err(lookup_error(
                        &server.to_string(),
                        no_answer(self.timeout, sent, &ignored),
                    ));
                }
                Err(_) => {}
                // Linux reports an ICMP port unreachable from an earlier
                // send as an error here; keep waiting like for a loss.
                Ok(Err(e)) => ignored.add(format!("receive: {e}")),
                Ok(Ok((_, from))) if !same_endpoint(from, server) => {
                    ignored.add(format!("datagram from {from}"));
                }
                Ok(Ok((n, _))) => match parse_response(&buf[..n], &tid) {
                    Ok(mapped) => return Ok(unmap(mapped)),
                    Err(Reject::ErrorResponse { code, reason }) => {
                        return Err(lookup_error(
                            &server.to_string(),
                            format!("error response {code} {reason}"),
                        ));
                    }
                    Err(reject) => {
                        tracing::debug!(%server, %reject, "ignoring STUN datagram");
                        ignored.add(reject.to_string());
                    }
                },
            }
        }
    }
}

/// What was ignored while waiting, for the failure message. Bounded, so a
/// flood of junk costs no memory.
#[derive(Default)]
struct Ignored {
    count: usize,
    kinds: std::collections::BTreeSet<String>,
}

impl Ignored {
    fn add(&mut self, kind: String) {
        self.count += 1;
        if self.kinds.len() < 8 {
            self.kinds.insert(kind);
        }
    }
}

fn no_answer(timeout: Duration, sent: u32, ignored: &Ignored) -> String {
    let mut msg = format!(
        "no answer within {} ({sent} requests sent)",
        humantime::format_duration(timeout)
    );
    if ignored.count > 0 {
        let kinds: Vec<&str> = ignored.kinds.iter().map(String::as_str).collect();
        msg.push_str(&format!(
            "; ignored {}: {}",
            ignored.count,
            kinds.join(", ")
        ));
    }
    msg
}

/// A dual-stack socket may report an IPv4 peer as ::ffff:a.b.c.d.
fn unmap(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(a, |v4| SocketAddr::new(v4.into(), a.port())),
        IpAddr::V4(_) => a,
    }
}

fn same_endpoint(a: SocketAddr, b: SocketAddr) -> bool {
    unmap(a) == unmap(b)
}

pub(crate) fn lookup_error(target: &str, message: impl ToString) -> Error {
    Error::AddressLookup {
        target: target.to_owned(),
        message: message.to_string(),
    }
}
