use std::net::SocketAddr;

use stun_rs::TransactionId;

use super::*;

fn tid(b: u8) -> TransactionId {
    TransactionId::from([b; 12])
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn request_is_a_binding_request_with_our_transaction_id() {
    let t = TransactionId::default();
    let req = binding_request(&t);
    assert_eq!(&req[0..2], &[0x00, 0x01], "Binding request type");
    assert_eq!(&req[4..8], &MAGIC_COOKIE.as_u32().to_be_bytes());
    assert_eq!(&req[8..20], &t.as_bytes()[..]);
    assert_eq!(req.len(), 28, "header + FINGERPRINT");
}

#[test]
fn reads_xor_mapped_and_mapped_address_v4_and_v6() {
    for mapped in [addr("198.18.0.1:40000"), addr("[2a00::7]:5555")] {
        for (xor, fp) in [(true, true), (true, false), (false, true), (false, false)] {
            let r = binding_response(&tid(7), mapped, xor, fp);
            assert_eq!(parse_response(&r, &tid(7)), Ok(mapped), "xor={xor} fp={fp}");
        }
    }
}

/// RFC 5769 §2.2 sample IPv4 response (with MESSAGE-INTEGRITY and FINGERPRINT).
#[test]
fn rfc5769_sample_response() {
    let r: [u8; 80] = [
        0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1,
        0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3,
        0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00,
        0x04, 0xc0, 0x7d, 0x4c, 0x96,
    ];
    let t = TransactionId::from([
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ]);
    assert_eq!(parse_response(&r, &t), Ok(addr("192.0.2.1:32853")));
    let mut bad = r;
    bad[79] ^= 1;
    assert_eq!(parse_response(&bad, &t), Err(Reject::BadFingerprint));
}

#[test]
fn rejects_wrong_transaction_and_non_stun() {
    let r = binding_response(&tid(1), addr("198.18.0.1:1"), true, true);
    assert_eq!(parse_response(&r, &tid(2)), Err(Reject::WrongTransaction));
    assert_eq!(parse_response(b"hello", &tid(1)), Err(Reject::NotStun));
    assert_eq!(
        parse_response(&r[..r.len() - 4], &tid(1)),
        Err(Reject::NotStun)
    );
    let mut trailing = r.clone();
    trailing.extend_from_slice(&[0; 4]);
    assert_eq!(parse_response(&trailing, &tid(1)), Err(Reject::NotStun));
    let mut cookie = r.clone();
    cookie[4] = 0;
    assert_eq!(parse_response(&cookie, &tid(1)), Err(Reject::NotStun));
    // Our own request echoed back is not an answer.
    let req = binding_request(&tid(1));
    assert_eq!(parse_response(&req, &tid(1)), Err(Reject::UnexpectedType));
}

#[test]
fn rejects_truncated_or_corrupt_address_attributes() {
    let r = binding_response(&tid(3), addr("198.18.0.1:9"), true, false);
    // XOR-MAPPED-ADDRESS value claims family 7.
    let mut fam = r.clone();
    fam[25] = 7;
    assert!(matches!(
        parse_response(&fam, &tid(3)),
        Err(Reject::Malformed(_))
    ));
    // Attribute length longer than the message.
    let mut len = r.clone();
    len[23] = 0x40;
    assert!(matches!(
        parse_response(&len, &tid(3)),
        Err(Reject::Malformed(_))
    ));
    // No address attribute at all.
    let mut none = r[..20].to_vec();
    none[2] = 0;
    none[3] = 0;
    assert_eq!(parse_response(&none, &tid(3)), Err(Reject::NoAddress));
}

#[test]
fn unknown_comprehension_required_attribute_and_error_responses() {
    let mut r = binding_response(&tid(4), addr("198.18.0.1:9"), true, false);
    // Append attribute 0x7777 (comprehension-required), length 4.
    r.extend_from_slice(&[0x77, 0x77, 0x00, 0x04, 1, 2, 3, 4]);
    let len = (r.len() - 20) as u16;
    r[2..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(
        parse_response(&r, &tid(4)),
        Err(Reject::UnknownRequired(0x7777))
    );
    // The same as comprehension-optional (0x8777) is fine.
    r[len as usize + 20 - 8] = 0x87;
    assert_eq!(parse_response(&r, &tid(4)), Ok(addr("198.18.0.1:9")));

    let mut e = binding_response(&tid(5), addr("198.18.0.1:9"), true, false);
    e[0] = 0x01;
    e[1] = 0x11; // Binding error response
    let mut e = e[..20].to_vec();
    // ERROR-CODE 400 "Bad" (class 4, number 0).
    e.extend_from_slice(&[0x00, 0x09, 0x00, 0x07, 0, 0, 4, 0, b'B', b'a', b'd', 0]);
    let len = (e.len() - 20) as u16;
    e[2..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(
        parse_response(&e, &tid(5)),
        Err(Reject::ErrorResponse {
            code: 400,
            reason: "Bad".into()
        })
    );
}
