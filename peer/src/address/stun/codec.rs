//! Binding requests and responses on the wire, through the `stun-rs` codec.
//! `parse_response` is pure and total: any datagram yields a `Reject`
//! rather than a panic (the fuzz test in `tests/address_stun_fuzz.rs`
//! holds it to that).
use std::net::SocketAddr;

use stun_rs::attributes::stun::{ErrorCode, Fingerprint, MappedAddress, XorMappedAddress};
use stun_rs::methods::BINDING;
use stun_rs::{
    MAGIC_COOKIE, MESSAGE_HEADER_SIZE, MessageClass, MessageDecoderBuilder, MessageEncoderBuilder,
    StunMessageBuilder, TransactionId,
};

/// Why a datagram was not taken as the answer to our request. All of these
/// are ignored while waiting, except `ErrorResponse`, which ends the
/// transaction with that server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// Not a STUN message at all (short, wrong leading bits or cookie, or a
    /// length that disagrees with the datagram).
    NotStun,
    /// A STUN message for some other transaction (a stale or forged reply).
    WrongTransaction,
    /// Not a Binding success or error response.
    UnexpectedType,
    /// FINGERPRINT present and wrong.
    BadFingerprint,
    /// The codec refused the message or one of its attributes.
    Malformed(String),
    /// A comprehension-required attribute we do not know (RFC 8489 §6.3.3).
    UnknownRequired(u16),
    /// A success response without a usable (XOR-)MAPPED-ADDRESS.
    NoAddress,
    /// The server answered with an error response.
    ErrorResponse { code: u16, reason: String },
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reject::NotStun => f.write_str("not a STUN message"),
            Reject::WrongTransaction => f.write_str("wrong transaction id"),
            Reject::UnexpectedType => f.write_str("not a Binding response"),
            Reject::BadFingerprint => f.write_str("FINGERPRINT does not match"),
            Reject::Malformed(why) => write!(f, "malformed message: {why}"),
            Reject::UnknownRequired(t) => {
                write!(f, "unknown comprehension-required attribute {t:#06x}")
            }
            Reject::NoAddress => f.write_str("no XOR-MAPPED-ADDRESS or MAPPED-ADDRESS"),
            Reject::ErrorResponse { code, reason } => write!(f, "error response {code} {reason}"),
        }
    }
}

/// A Binding request with `tid` and a FINGERPRINT (RFC 8489 recommends it
/// so a server multiplexing STUN with other traffic can tell it apart).
pub fn binding_request(tid: &TransactionId) -> Vec<u8> {
    let msg = StunMessageBuilder::new(BINDING, MessageClass::Request)
        .with_transaction_id(*tid)
        .with_attribute(Fingerprint::default())
        .build();
    let mut buf = vec![0u8; 64];
    let n = MessageEncoderBuilder::default()
        .build()
        .encode(&mut buf, &msg)
        .expect("a Binding request with a FINGERPRINT fits in 64 bytes");
    buf.truncate(n);
    buf
}

/// The reflexive transport address in a Binding success response to `tid`.
/// XOR-MAPPED-ADDRESS is preferred; MAPPED-ADDRESS is the fallback for old
/// (RFC 3489) servers.
pub fn parse_response(buf: &[u8], tid: &TransactionId) -> Result<SocketAddr, Reject> {
    // Header checks first, by hand: they are cheap, and a datagram must be
    // exactly one message (the codec would accept trailing bytes).
    if buf.len() < MESSAGE_HEADER_SIZE
        || buf[0] & 0xc0 != 0
        || MAGIC_COOKIE.as_u32() != u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]])
    {
        return Err(Reject::NotStun);
    }
    let declared = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    if declared % 4 != 0 || declared + MESSAGE_HEADER_SIZE != buf.len() {
        return Err(Reject::NotStun);
    }
    if buf[8..20] != tid.as_bytes()[..] {
        return Err(Reject::WrongTransaction);
    }
    let (msg, _) = MessageDecoderBuilder::default()
        .build()
        .decode(buf)
        .map_err(|e| Reject::Malformed(e.to_string()))?;
    if msg.method() != BINDING {
        return Err(Reject::UnexpectedType);
    }
    if let Some(fp) = msg.get::<Fingerprint>() {
        let fp = fp
            .as_fingerprint()
            .map_err(|e| Reject::Malformed(e.to_string()))?;
        let input = stun_rs::get_input_text::<Fingerprint>(buf).ok_or(Reject::BadFingerprint)?;
        if !fp.validate(&input) {
            return Err(Reject::BadFingerprint);
        }
    }
    if let Some(unknown) = msg
        .attributes()
        .iter()
        .find(|a| a.is_unknown() && a.attribute_type().is_comprehension_required())
    {
        return Err(Reject::UnknownRequired(unknown.attribute_type().as_u16()));
    }
    match msg.class() {
        MessageClass::SuccessResponse => {}
        MessageClass::ErrorResponse => {
            let (code, reason) = msg
                .get::<ErrorCode>()
                .and_then(|a| a.as_error_code().ok())
                .map_or((0, "without ERROR-CODE".to_owned()), |e| {
                    (
                        e.error_code().error_code(),
                        e.error_code().reason().to_owned(),
                    )
                });
            return Err(Reject::ErrorResponse { code, reason });
        }
        _ => return Err(Reject::UnexpectedType),
    }
    let addr = msg
        .get::<XorMappedAddress>()
        .and_then(|a| a.as_xor_mapped_address().ok())
        .map(|a| *a.socket_address())
        .or_else(|| {
            msg.get::<MappedAddress>()
                .and_then(|a| a.as_mapped_address().ok())
                .map(|a| *a.socket_address())
        })
        .ok_or(Reject::NoAddress)?;
    // A server that maps us to nowhere is broken; do not advertise it.
    if addr.ip().is_unspecified() || addr.port() == 0 {
        return Err(Reject::NoAddress);
    }
    Ok(addr)
}

/// A Binding success response to `tid` naming `mapped`, as XOR-MAPPED-ADDRESS
/// or as the old MAPPED-ADDRESS, with or without FINGERPRINT. The tests'
/// STUN responders answer with it.
pub fn binding_response(
    tid: &TransactionId,
    mapped: SocketAddr,
    xor: bool,
    fingerprint: bool,
) -> Vec<u8> {
    let mut b =
        StunMessageBuilder::new(BINDING, MessageClass::SuccessResponse).with_transaction_id(*tid);
    b = if xor {
        b.with_attribute(XorMappedAddress::from(mapped))
    } else {
        b.with_attribute(MappedAddress::from(mapped))
    };
    if fingerprint {
        b = b.with_attribute(Fingerprint::default());
    }
    let mut buf = vec![0u8; 128];
    let n = MessageEncoderBuilder::default()
        .build()
        .encode(&mut buf, &b.build())
        .expect("a Binding response with one address fits in 128 bytes");
    buf.truncate(n);
    buf
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
