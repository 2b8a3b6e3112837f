//! Conversions between the wire's `PeerInfo` and the membership types.
use sorcha_proto::discovery::{PeerCapabilities, PeerInfo};

use super::membership::{Capabilities, PeerDescription, PeerRecord};

/// Why a `PeerInfo` from the wire was refused, naming the field.
pub fn describe(info: PeerInfo) -> Result<PeerDescription, String> {
    if info.peer_id.is_empty() {
        return Err("peer_info.peer_id: must not be empty".into());
    }
    if info.peer_id.len() > 128 {
        return Err(format!(
            "peer_info.peer_id: at most 128 characters, got {}",
            info.peer_id.len()
        ));
    }
    if info.address.is_empty() || info.address.len() > 255 {
        return Err(format!(
            "peer_info.address: expected a host name or IP address, got {:?}",
            info.address
        ));
    }
    let port = u16::try_from(info.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("peer_info.port: expected 1..=65535, got {}", info.port))?;
    let caps = info.capabilities.unwrap_or_default();
    Ok(PeerDescription {
        peer_id: info.peer_id,
        address: info.address,
        port,
        supported_protocols: info.supported_protocols,
        last_seen: info.last_seen,
        capabilities: Capabilities {
            supports_streaming: caps.supports_streaming,
            supports_transaction_distribution: caps.supports_transaction_distribution,
            max_transaction_size: caps.max_transaction_size,
        },
    })
}

pub fn record_to_info(p: &PeerRecord) -> PeerInfo {
    PeerInfo {
        peer_id: p.peer_id.clone(),
        address: p.address.clone(),
        port: i32::from(p.port),
        supported_protocols: p.supported_protocols.clone(),
        last_seen: p.last_seen,
        capabilities: Some(caps_to_wire(p.capabilities)),
    }
}

pub fn description_to_info(d: &PeerDescription) -> PeerInfo {
    PeerInfo {
        peer_id: d.peer_id.clone(),
        address: d.address.clone(),
        port: i32::from(d.port),
        supported_protocols: d.supported_protocols.clone(),
        last_seen: d.last_seen,
        capabilities: Some(caps_to_wire(d.capabilities)),
    }
}

fn caps_to_wire(c: Capabilities) -> PeerCapabilities {
    PeerCapabilities {
        supports_streaming: c.supports_streaming,
        supports_transaction_distribution: c.supports_transaction_distribution,
        max_transaction_size: c.max_transaction_size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_fields_are_named() {
        let ok = PeerInfo {
            peer_id: "a".into(),
            address: "127.0.0.1".into(),
            port: 7001,
            ..Default::default()
        };
        assert!(describe(ok.clone()).is_ok());
        let bad_port = PeerInfo {
            port: 70000,
            ..ok.clone()
        };
        assert!(
            describe(bad_port.clone())
                .unwrap_err()
                .contains("peer_info.port")
        );
        let no_id = PeerInfo {
            peer_id: String::new(),
            ..ok.clone()
        };
        assert!(
            describe(no_id.clone())
                .unwrap_err()
                .contains("peer_info.peer_id")
        );
        let no_addr = PeerInfo {
            address: String::new(),
            ..ok
        };
        assert!(
            describe(no_addr.clone())
                .unwrap_err()
                .contains("peer_info.address")
        );
    }
}
