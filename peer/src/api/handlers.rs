//! Protocol-independent request handling shared by gRPC and REST, so both
//! fallbacks answer identically.
use sorcha_proto::discovery::{
    PeerListRequest, PeerListResponse, PeerStatus, PingRequest, PingResponse, RegisterPeerRequest,
    RegisterPeerResponse,
};

use crate::discovery::Membership;
use crate::discovery::membership::{IgnoreReason, Source};
use crate::discovery::state::NodeState;
use crate::discovery::wire::describe;

#[derive(Debug)]
pub enum RequestError {
    /// The caller sent something wrong; the message names the field.
    Invalid(String),
    Internal(String),
}

impl From<crate::Error> for RequestError {
    fn from(e: crate::Error) -> Self {
        RequestError::Internal(e.to_string())
    }
}

pub fn register(
    m: &Membership,
    req: RegisterPeerRequest,
) -> Result<RegisterPeerResponse, RequestError> {
    let info = req
        .peer_info
        .ok_or_else(|| RequestError::Invalid("peer_info: required".into()))?;
    let d = describe(info).map_err(RequestError::Invalid)?;
    let report = m.merge(std::slice::from_ref(&d), Source::Direct)?;
    let (success, message) = match report.ignored.first().map(|(_, why)| *why) {
        None => (true, format!("registered {}", d.peer_id)),
        Some(IgnoreReason::IsSelf) => (
            false,
            "refused: that is this node's own id or address".into(),
        ),
        Some(IgnoreReason::ListFull) => (
            false,
            format!(
                "refused: peer list full ({} peers)",
                m.cfg.max_peers_in_list
            ),
        ),
        Some(IgnoreReason::InvalidAddress) => {
            (false, "refused: invalid or conflicting address".into())
        }
        Some(IgnoreReason::RecentlyRemoved) => (false, "refused: recently removed".into()),
    };
    if success {
        m.events.record(
            crate::events::EventKind::PeerRegistered,
            Some(&d.peer_id),
            format!("{} registered", d.peer_id),
        );
    }
    Ok(RegisterPeerResponse { success, message })
}

pub fn peer_list(m: &Membership, req: PeerListRequest) -> Result<PeerListResponse, RequestError> {
    if req.max_peers < 0 {
        return Err(RequestError::Invalid(format!(
            "max_peers: expected 0 (default) or more, got {}",
            req.max_peers
        )));
    }
    if let Some(info) = req.requester {
        let d = describe(info)
            .map_err(|e| RequestError::Invalid(e.replacen("peer_info", "requester", 1)))?;
        m.merge(std::slice::from_ref(&d), Source::Direct)?;
    } else if !req.requesting_peer_id.is_empty() {
        m.record_success(&req.requesting_peer_id)?;
    }
    let cap = m.cfg.max_peers_in_list;
    let max = match req.max_peers {
        0 => m.cfg.bootstrap_peer_list_size.min(cap),
        n => (n as usize).min(cap),
    };
    let exclude = Some(req.requesting_peer_id.as_str()).filter(|s| !s.is_empty());
    let peers = m.list_infos(max, exclude);
    let (known, _) = m.counts();
    Ok(PeerListResponse {
        peers,
        total_peers: known as i32,
        responder: Some(m.self_info()),
    })
}

pub fn ping(m: &Membership, req: PingRequest) -> Result<PingResponse, RequestError> {
    if let Some(info) = req.sender {
        let d = describe(info)
            .map_err(|e| RequestError::Invalid(e.replacen("peer_info", "sender", 1)))?;
        m.merge(std::slice::from_ref(&d), Source::Direct)?;
    } else if !req.peer_id.is_empty() {
        m.record_success(&req.peer_id)?;
    }
    let (known, active) = m.counts();
    Ok(PingResponse {
        peer_id: m.id().to_owned(),
        timestamp: crate::clock::now_ms(),
        status: wire_status(m.state()) as i32,
        known_peers: known as i32,
        active_peers: active as i32,
    })
}

pub fn wire_status(s: NodeState) -> PeerStatus {
    match s {
        NodeState::Online => PeerStatus::Online,
        NodeState::Degraded => PeerStatus::Degraded,
        NodeState::Offline => PeerStatus::Offline,
    }
}
