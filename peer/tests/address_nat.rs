//! Address discovery against real coturn STUN servers behind a real NAT,
//! in network namespaces each test builds (see `address_lab`). Every test
//! runs the `sorcha-peer address` command inside the lab.
mod address_lab;

use address_lab::{
    HOST, JUNK, LOOKUP, Lab, Nat, PRIVATE, ROUTER_PUBLIC, STUN_A, STUN_B, available,
};
use serde_json::Value;

/// The lab's helper processes are this binary; see `address_lab::helper`.
#[test]
fn lab_helper() {
    address_lab::helper::main_if_helper();
}

fn stun(ip: &str) -> String {
    format!("{ip}:3478")
}

fn attempts(r: &Value) -> &Vec<Value> {
    r["attempts"].as_array().unwrap()
}

#[test]
fn private_host_behind_masquerade_finds_router_address_and_endpoint_independent_mapping() {
    if !available("private_host_behind_masquerade...") {
        return;
    }
    let lab = Lab::new(Nat::Masquerade);
    let _a = lab.coturn(STUN_A);
    let _b = lab.coturn(STUN_B);
    let r = lab.address(
        &lab.private,
        &["--stun", &stun(STUN_A), "--stun", &stun(STUN_B)],
    );
    assert_eq!(r["internal_address"], PRIVATE, "{r:#}");
    assert_eq!(r["internal_class"], "private");
    assert_eq!(r["external_address"], ROUTER_PUBLIC, "{r:#}");
    assert_eq!(r["method"], "stun");
    assert_eq!(r["nat_type"], "endpoint-independent", "{r:#}");
    assert_eq!(r["mapping"], "endpoint-independent");
    // Both servers answered, with the same mapping of our one socket.
    let a = attempts(&r);
    assert_eq!(a.len(), 2, "{r:#}");
    assert_eq!(a[0]["answer"], a[1]["answer"]);
    assert!(a[0]["answer"].as_str().unwrap().starts_with(ROUTER_PUBLIC));
}

#[test]
fn random_fully_masquerade_is_reported_as_symmetric() {
    if !available("random_fully_masquerade_is_reported_as_symmetric") {
        return;
    }
    let lab = Lab::new(Nat::RandomFully);
    let _a = lab.coturn(STUN_A);
    let _b = lab.coturn(STUN_B);
    let args = ["--stun", &stun(STUN_A), "--stun", &stun(STUN_B)];
    let mut r = lab.address(&lab.private, &args);
    if r["nat_type"] == "endpoint-independent" {
        // Two random ports can coincide (about 1 in 28,000); ask again.
        r = lab.address(&lab.private, &args);
    }
    assert_eq!(r["external_address"], ROUTER_PUBLIC, "{r:#}");
    assert_eq!(r["nat_type"], "symmetric", "{r:#}");
    assert_eq!(r["mapping"], "endpoint-dependent");
    let a = attempts(&r);
    assert_ne!(a[0]["answer"], a[1]["answer"], "{r:#}");

    // The human output says so too.
    let out = lab.cli(
        &lab.private,
        &["address", "--stun", &stun(STUN_A), "--stun", &stun(STUN_B)],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("symmetric"), "{text}");
    assert!(
        text.contains(&format!("external address: {ROUTER_PUBLIC}")),
        "{text}"
    );
}

#[test]
fn public_host_reports_its_own_address_and_no_nat() {
    if !available("public_host_reports_its_own_address_and_no_nat") {
        return;
    }
    let lab = Lab::new(Nat::Masquerade);
    let _a = lab.coturn(STUN_A);
    let r = lab.address(&lab.host, &["--stun", &stun(STUN_A)]);
    assert_eq!(r["internal_address"], HOST, "{r:#}");
    assert_eq!(r["internal_class"], "public");
    assert_eq!(r["external_address"], HOST);
    assert_eq!(r["method"], "interface");
    assert_eq!(r["nat_type"], "none");
    assert!(attempts(&r).is_empty(), "a public address needs no lookup");

    // Bound to a private address on a host without NAT, STUN confirms it:
    // the server sees the host's own address.
    lab.exec_ok(
        &lab.host,
        &["ip", "addr", "add", "10.88.0.5/32", "dev", "eth0"],
    );
    lab.exec_ok(
        &lab.public,
        &["ip", "route", "add", "10.88.0.5/32", "via", HOST],
    );
    let cfg = lab.config(
        "bound.yaml",
        "PeerService:\n  ListenAddress: 10.88.0.5\n  ListenPort: 5001\n",
    );
    let r = lab.address(
        &lab.host,
        &["--config", cfg.to_str().unwrap(), "--stun", &stun(STUN_A)],
    );
    assert_eq!(r["internal_address"], "10.88.0.5", "{r:#}");
    assert_eq!(r["method"], "stun");
    assert_eq!(r["nat_type"], "none", "{r:#}");
}

#[test]
fn http_lookup_answers_when_the_stun_servers_are_down() {
    if !available("http_lookup_answers_when_the_stun_servers_are_down") {
        return;
    }
    let lab = Lab::new(Nat::Masquerade);
    let a = lab.coturn(STUN_A);
    let b = lab.coturn(STUN_B);
    let _bad = lab.helper(&lab.public, "http-bad", &format!("{JUNK}:8080"), "tcp");
    let _echo = lab.helper(&lab.public, "http-echo", &format!("{LOOKUP}:8080"), "tcp");
    drop((a, b)); // coturn stopped
    let cfg = lab.config(
        "fast.yaml",
        "PeerService:\n  NetworkAddress:\n    LookupTimeoutSeconds: 1\n",
    );
    let r = lab.address(
        &lab.private,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--stun",
            &stun(STUN_A),
            "--stun",
            &stun(STUN_B),
            "--http-lookup",
            &format!("http://{JUNK}:8080/"),
            "--http-lookup",
            &format!("http://{LOOKUP}:8080/ip"),
        ],
    );
    assert_eq!(r["external_address"], ROUTER_PUBLIC, "{r:#}");
    assert_eq!(r["method"], "http");
    assert_eq!(r["nat_type"], "mapping-unknown");
    let a = attempts(&r);
    assert_eq!(a.len(), 4, "{r:#}");
    for stun_attempt in &a[..2] {
        assert_eq!(stun_attempt["method"], "stun");
        assert!(
            stun_attempt["error"]
                .as_str()
                .unwrap()
                .contains("no answer within 1s"),
            "{r:#}"
        );
    }
    assert!(
        a[2]["error"]
            .as_str()
            .unwrap()
            .contains("is not an IP address"),
        "the HTML answer is rejected: {r:#}"
    );
    assert_eq!(a[3]["answer"], ROUTER_PUBLIC);
}

#[test]
fn stun_responses_with_garbage_or_wrong_transaction_ids_are_ignored() {
    if !available("stun_responses_with_garbage_or_wrong_transaction_ids_are_ignored") {
        return;
    }
    let lab = Lab::new(Nat::Masquerade);
    let _a = lab.coturn(STUN_A);
    let _junk = lab.helper(&lab.public, "stun-junk", &stun(JUNK), "udp");
    let cfg = lab.config(
        "fast.yaml",
        "PeerService:\n  NetworkAddress:\n    LookupTimeoutSeconds: 1\n",
    );
    let r = lab.address(
        &lab.private,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--stun",
            &stun(JUNK),
            "--stun",
            &stun(STUN_A),
        ],
    );
    // Nothing from the junk responder was taken; coturn's answer was.
    assert_eq!(r["external_address"], ROUTER_PUBLIC, "{r:#}");
    let a = attempts(&r);
    let junk_error = a[0]["error"].as_str().unwrap();
    for why in [
        "not a STUN message",
        "wrong transaction id",
        "malformed message",
        "FINGERPRINT does not match",
    ] {
        assert!(junk_error.contains(why), "{why} missing in {junk_error}");
    }
    assert!(a[1]["answer"].as_str().unwrap().starts_with(ROUTER_PUBLIC));
    assert!(
        !r.to_string().contains("198.18.99.99"),
        "decoy taken: {r:#}"
    );
}

#[test]
fn the_answer_after_junk_is_taken() {
    if !available("the_answer_after_junk_is_taken") {
        return;
    }
    let lab = Lab::new(Nat::Masquerade);
    let _junk = lab.helper(&lab.public, "stun-junk-then-answer", &stun(JUNK), "udp");
    let r = lab.address(&lab.private, &["--stun", &stun(JUNK)]);
    assert_eq!(r["external_address"], ROUTER_PUBLIC, "{r:#}");
    assert_eq!(r["method"], "stun");
    assert_eq!(
        r["nat_type"], "mapping-unknown",
        "one server: mapping untested"
    );
}
