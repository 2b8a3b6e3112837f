//! Small servers and a client that the lab runs inside its namespaces. They
//! are this test binary itself, re-run with `SORCHA_LAB_HELPER="MODE ARG"`
//! as its only test (`lab_helper`), so they need no extra tools:
//!
//! - `http-echo ADDR`: an HTTP lookup service answering the caller's IP;
//! - `http-bad ADDR`: a lookup service answering an HTML page;
//! - `stun-junk ADDR`: a STUN responder answering every request with
//!   garbage, a response for another transaction, a malformed response
//!   and one with a wrong FINGERPRINT, but never the answer;
//! - `stun-junk-then-answer ADDR`: the same, then the right answer;
//! - `get URL`: prints the body of an http:// GET between markers.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};

use sorcha_peer::address::stun::codec::binding_response;
use stun_rs::TransactionId;

pub const ENV: &str = "SORCHA_LAB_HELPER";
const BODY_START: &str = "<<<BODY";
const BODY_END: &str = "BODY>>>";

/// Runs the helper named in the environment and exits; returns at once
/// when this is a normal test run.
pub fn main_if_helper() {
    let Ok(spec) = std::env::var(ENV) else {
        return;
    };
    let (mode, arg) = spec.split_once(' ').expect("MODE ARG");
    match mode {
        "http-echo" => http_server(arg, |peer| format!("{peer}\n")),
        "http-bad" => http_server(arg, |_| "<html><body>your ip</body></html>".into()),
        "stun-junk" => stun_junk(arg, false),
        "stun-junk-then-answer" => stun_junk(arg, true),
        "get" => {
            println!("{BODY_START}{}{BODY_END}", get(arg));
            std::process::exit(0);
        }
        other => panic!("unknown helper mode {other}"),
    }
}

fn http_server(addr: &str, body: impl Fn(std::net::IpAddr) -> String) -> ! {
    let l = TcpListener::bind(addr).unwrap();
    loop {
        let Ok((mut s, peer)) = l.accept() else {
            continue;
        };
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let b = body(peer.ip());
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
            b.len()
        );
    }
}

fn stun_junk(addr: &str, then_answer: bool) -> ! {
    let sock = UdpSocket::bind(addr).unwrap();
    let mut buf = [0u8; 1500];
    let mut n_req = 0u8;
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if n < 20 {
            continue;
        }
        n_req = n_req.wrapping_add(1);
        let tid = TransactionId::from(<[u8; 12]>::try_from(&buf[8..20]).unwrap());
        // Garbage that is not STUN at all.
        let _ = sock.send_to(&[0xde, 0xad, 0xbe, 0xef, n_req], from);
        // A well-formed response to another transaction, naming a decoy.
        let mut other = *tid.as_bytes();
        other[0] ^= 0xff;
        let decoy = "198.18.99.99:9999".parse().unwrap();
        let _ = sock.send_to(&binding_response(&other.into(), decoy, true, true), from);
        // Our transaction, but XOR-MAPPED-ADDRESS with address family 7.
        let mut bad = binding_response(&tid, decoy, true, false);
        bad[25] = 7;
        let _ = sock.send_to(&bad, from);
        // Our transaction, but a FINGERPRINT that does not match.
        let mut fp = binding_response(&tid, decoy, true, true);
        let last = fp.len() - 1;
        fp[last] ^= 0x55;
        let _ = sock.send_to(&fp, from);
        if then_answer {
            let _ = sock.send_to(&binding_response(&tid, from, true, true), from);
        }
    }
}

fn get(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let Ok(mut s) = TcpStream::connect(authority) else {
        return "CONNECT-FAILED".into();
    };
    let _ = write!(s, "GET /{path} HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// The body `get` printed, out of the test harness's output around it.
pub fn extract_body(output: &str) -> String {
    output
        .split_once(BODY_START)
        .and_then(|(_, rest)| rest.split_once(BODY_END))
        .map(|(body, _)| body.to_owned())
        .unwrap_or_default()
}
