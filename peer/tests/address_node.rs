//! The node end to end in the NAT lab (`address_lab`): `sorcha-peer run`
//! behind the NAT advertises the router's address to a bootstrap node on
//! the public segment, verifies itself through it, reports the result in
//! status and metrics, and follows changes of the NAT and of its network.
mod address_lab;

use std::time::Duration;

use address_lab::{
    HOST, Lab, Nat, PRIVATE_2, ROUTER_LAN, ROUTER_PUBLIC, ROUTER_PUBLIC_2, STUN_A, STUN_B,
    available,
};
use serde_json::Value;

/// The lab's helper processes are this binary; see `address_lab::helper`.
#[test]
fn lab_helper() {
    address_lab::helper::main_if_helper();
}

const PORT: u16 = 7100;
const WAIT: Duration = Duration::from_secs(30);

fn url(ip: &str) -> String {
    format!("http://{ip}:{PORT}")
}

fn node_config(
    lab: &Lab,
    name: &str,
    bootstrap: Option<&str>,
    recheck: &str,
) -> std::path::PathBuf {
    let bootstrap = bootstrap.map_or(String::new(), |b| {
        format!("    BootstrapNodes: [\"{b}\"]\n")
    });
    let yaml = format!(
        "PeerService:\n  ListenPort: {PORT}\n  DataDirectory: {data}\n  NetworkAddress:\n    \
         StunServers: [\"{STUN_A}:3478\", \"{STUN_B}:3478\"]\n    RecheckIntervalMinutes: \"{recheck}\"\n    \
         LookupTimeoutSeconds: 1\n  PeerDiscovery:\n{bootstrap}    RefreshIntervalMinutes: \"1s\"\n    \
         PeerTimeoutSeconds: \"500ms\"\n    BootstrapRetryMinutes: \"500ms\"\n    MinHealthyPeers: 1\n  \
         Communication:\n    ConnectionTimeout: \"500ms\"\n",
        data = lab.path(name).display(),
    );
    lab.config(&format!("{name}.yaml"), &yaml)
}

fn addr_status(s: &Value) -> &Value {
    &s["network_address"]
}

/// The address `peer_id` has in the peer list of the node at `node_url`.
fn listed_address(lab: &Lab, ns: &str, node_url: &str, peer_id: &str) -> Option<String> {
    let out = lab.cli(ns, &["peers", "list", "--peer", node_url, "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).ok()?;
    list["peers"]
        .as_array()?
        .iter()
        .find(|p| p["peer_id"] == peer_id)
        .and_then(|p| p["address"].as_str().map(str::to_owned))
}

#[test]
fn node_behind_nat_advertises_the_router_address_and_follows_the_nat() {
    if !available("node_behind_nat_advertises_the_router_address_and_follows_the_nat") {
        return;
    }
    let lab = Lab::new(Nat::Masquerade);
    let _a = lab.coturn(STUN_A);
    let _b = lab.coturn(STUN_B);
    let boot_cfg = node_config(&lab, "boot", None, "2s");
    let _boot = lab.node(&lab.host, "boot", &boot_cfg, &url(HOST));
    let nat_cfg = node_config(&lab, "natted", Some(&url(HOST)), "2s");
    let natted_url = url(address_lab::PRIVATE);
    let _natted = lab.node(&lab.private, "natted", &nat_cfg, &natted_url);

    // The public node: its own address, no NAT, reachable.
    let boot = lab.status(&lab.host, &url(HOST)).unwrap();
    lab.wait_until("the bootstrap node verified itself", WAIT, || {
        addr_status(&lab.status(&lab.host, &url(HOST)).unwrap())["reachable"] == true
    });
    let b = addr_status(&boot);
    assert_eq!(b["external_address"], HOST, "{boot:#}");
    assert_eq!(
        (b["method"].as_str(), b["nat_type"].as_str()),
        (Some("interface"), Some("none"))
    );

    // The NATed node: the router's address, and no way in.
    let s = lab.status(&lab.private, &natted_url).unwrap();
    let n = addr_status(&s);
    assert_eq!(s["address"], ROUTER_PUBLIC, "advertised: {s:#}");
    assert_eq!(n["external_address"], ROUTER_PUBLIC);
    assert_eq!(n["internal_address"], address_lab::PRIVATE);
    assert_eq!(n["method"], "stun");
    assert_eq!(n["nat_type"], "endpoint-independent");
    lab.wait_until("the NATed node found it cannot reach itself", WAIT, || {
        addr_status(&lab.status(&lab.private, &natted_url).unwrap())["reachable"] == false
    });
    let s = lab.status(&lab.private, &natted_url).unwrap();
    assert_eq!(
        addr_status(&s)["reachability"],
        "behind restrictive NAT",
        "{s:#}"
    );
    let text = String::from_utf8(
        lab.cli(&lab.private, &["status", "--peer", &natted_url])
            .stdout,
    )
    .unwrap();
    assert!(
        text.contains("behind restrictive NAT") && text.contains("endpoint-independent"),
        "{text}"
    );

    // What RegisterPeer/Ping advertised reached the bootstrap node.
    let id = s["node_id"].as_str().unwrap().to_owned();
    lab.wait_until(
        "the bootstrap node lists the NATed node at the router",
        WAIT,
        || listed_address(&lab, &lab.host, &url(HOST), &id).as_deref() == Some(ROUTER_PUBLIC),
    );

    let metrics = lab.http_get(&lab.private, &format!("{natted_url}/metrics"));
    let info = metrics
        .lines()
        .find(|l| l.starts_with("sorcha_external_address_info{"))
        .unwrap_or_else(|| panic!("no address metric in\n{metrics}"));
    for part in [
        &format!("address=\"{ROUTER_PUBLIC}\""),
        "nat_type=\"endpoint-independent\"",
        "method=\"stun\"",
    ] {
        assert!(info.contains(part) && info.ends_with(" 1"), "{info}");
    }
    assert!(
        metrics.contains("sorcha_external_address_reachable 0"),
        "{metrics}"
    );

    // A port forward (with hairpinning) on the router: the re-check finds
    // the node reachable.
    let port = PORT.to_string();
    let dest = format!("{}:{PORT}", address_lab::PRIVATE);
    lab.exec_ok(
        &lab.router,
        &[
            "iptables",
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-d",
            ROUTER_PUBLIC,
            "-p",
            "tcp",
            "--dport",
            &port,
            "-j",
            "DNAT",
            "--to-destination",
            &dest,
        ],
    );
    lab.exec_ok(
        &lab.router,
        &[
            "iptables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            "lan",
            "-d",
            address_lab::PRIVATE,
            "-p",
            "tcp",
            "--dport",
            &port,
            "-j",
            "MASQUERADE",
        ],
    );
    lab.wait_until("the re-check finds the port forward", WAIT, || {
        addr_status(&lab.status(&lab.private, &natted_url).unwrap())["reachable"] == true
    });
    assert!(
        lab.http_get(&lab.private, &format!("{natted_url}/metrics"))
            .contains("sorcha_external_address_reachable 1")
    );

    // The router's public address changes: the node follows, and tells its peers.
    lab.exec_ok(
        &lab.router,
        &[
            "ip",
            "addr",
            "add",
            &format!("{ROUTER_PUBLIC_2}/24"),
            "dev",
            "wan",
        ],
    );
    lab.exec_ok(
        &lab.router,
        &[
            "iptables",
            "-t",
            "nat",
            "-I",
            "POSTROUTING",
            "1",
            "-o",
            "wan",
            "-j",
            "SNAT",
            "--to-source",
            ROUTER_PUBLIC_2,
        ],
    );
    lab.wait_until("the node advertises the new router address", WAIT, || {
        lab.status(&lab.private, &natted_url).unwrap()["address"] == ROUTER_PUBLIC_2
    });
    lab.wait_until("the bootstrap node learns the new address", WAIT, || {
        listed_address(&lab, &lab.host, &url(HOST), &id).as_deref() == Some(ROUTER_PUBLIC_2)
    });
}

#[test]
fn a_network_change_triggers_a_recheck() {
    if !available("a_network_change_triggers_a_recheck") {
        return;
    }
    let lab = Lab::new(Nat::Masquerade);
    let _a = lab.coturn(STUN_A);
    let _b = lab.coturn(STUN_B);
    // An hour between periodic re-checks: only the network change can explain one.
    let cfg = node_config(&lab, "natted", None, "60m");
    let _node = lab.node(&lab.private, "natted", &cfg, &url(address_lab::PRIVATE));
    let before = lab
        .status(&lab.private, &url(address_lab::PRIVATE))
        .unwrap();
    assert_eq!(
        addr_status(&before)["internal_address"],
        address_lab::PRIVATE
    );

    // The host moves to another address (as after a DHCP change).
    let v = &lab.private;
    let renumber = format!(
        "ip addr flush dev eth0 && ip addr add {PRIVATE_2}/24 dev eth0 && ip route add default via {ROUTER_LAN}"
    );
    lab.exec_ok(v, &["sh", "-c", &renumber]);
    lab.wait_until("the re-check after the network change", WAIT, || {
        lab.status(v, &url(PRIVATE_2)).is_some_and(|s| {
            addr_status(&s)["internal_address"] == PRIVATE_2
                && addr_status(&s)["external_address"] == ROUTER_PUBLIC
        })
    });
    let after = lab.status(v, &url(PRIVATE_2)).unwrap();
    assert!(
        addr_status(&after)["checked_at"].as_i64() > addr_status(&before)["checked_at"].as_i64(),
        "{after:#}"
    );
}
