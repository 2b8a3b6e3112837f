//! A NAT lab in Linux network namespaces, built by each test for itself:
//!
//! ```text
//!  private (10.77.0.2) --- router (10.77.0.1 | 198.18.0.1, MASQUERADE) --- public bridge
//!                                                                          |- 198.18.0.2  coturn A
//!                                                                          |- 198.18.0.3  coturn B
//!                                                                          |- 198.18.0.4  HTTP lookup (echo)
//!                                                                          |- 198.18.0.5  junk STUN / bad lookup
//!                                                                          `- host (198.18.0.10)
//! ```
//!
//! 198.18.0.0/15 is RFC 2544's benchmarking range: it stands in for the
//! internet here and is never routed outside these namespaces. Names carry
//! the process id and a counter, so tests run in parallel. Every process is
//! killed and every namespace deleted on drop, including when a test panics.
#![allow(dead_code)]

pub mod helper;
mod run;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const ROUTER_PUBLIC: &str = "198.18.0.1";
pub const ROUTER_PUBLIC_2: &str = "198.18.0.9";
pub const STUN_A: &str = "198.18.0.2";
pub const STUN_B: &str = "198.18.0.3";
pub const LOOKUP: &str = "198.18.0.4";
pub const JUNK: &str = "198.18.0.5";
pub const HOST: &str = "198.18.0.10";
pub const ROUTER_LAN: &str = "10.77.0.1";
pub const PRIVATE: &str = "10.77.0.2";
pub const PRIVATE_2: &str = "10.77.0.3";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// Linux keeps the source port when it can: endpoint-independent mapping.
    Masquerade,
    /// A random port per connection: endpoint-dependent ("symmetric") mapping.
    RandomFully,
}

/// Whether this machine can build the lab. Under CI=true a missing piece
/// fails the test; elsewhere the caller skips with one line saying why.
pub fn available(test: &str) -> bool {
    // Checked once per process: parallel tests would race on the probe namespace.
    static MISSING: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    match MISSING.get_or_init(missing_requirement).clone() {
        None => true,
        Some(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "CI=true and the NAT lab cannot run: {why} (scripts/install-test-deps installs iproute2, iptables and coturn)"
            )
        }
        Some(why) => {
            eprintln!("skipping {test}: {why} (run scripts/install-test-deps as root)");
            false
        }
    }
}

fn missing_requirement() -> Option<String> {
    for tool in ["ip", "iptables", "turnserver", "ss"] {
        if !on_path(tool) {
            return Some(format!("{tool} is not installed"));
        }
    }
    let probe = format!("sorcha-probe-{}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &probe])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Some("cannot create network namespaces (needs root)".into());
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    None
}

fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|d| d.join(tool).is_file())
}

/// Runs a command to completion; panics with its stderr on failure.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A process started in a namespace; killed and reaped on drop.
pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Lab {
    pub id: String,
    pub public: String,
    pub router: String,
    pub private: String,
    pub host: String,
    pub dir: tempfile::TempDir,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Lab {
    pub fn new(nat: Nat) -> Lab {
        let id = format!(
            "sorcha{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let lab = Lab {
            public: format!("{id}-pub"),
            router: format!("{id}-rtr"),
            private: format!("{id}-prv"),
            host: format!("{id}-host"),
            id,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        // From here on, a failure drops `lab`, which removes what exists.
        for ns in lab.namespaces() {
            run(&["ip", "netns", "add", ns]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let (p, r, v, h) = (&lab.public, &lab.router, &lab.private, &lab.host);
        run(&["ip", "-n", p, "link", "add", "br0", "type", "bridge"]);
        run(&["ip", "-n", p, "link", "set", "br0", "up"]);
        for a in [STUN_A, STUN_B, LOOKUP, JUNK] {
            run(&[
                "ip",
                "-n",
                p,
                "addr",
                "add",
                &format!("{a}/24"),
                "dev",
                "br0",
            ]);
        }
        lab.veth(r, "wan", p, "p-rtr");
        lab.veth(h, "eth0", p, "p-host");
        lab.veth(v, "eth0", r, "lan");
        for port in ["p-rtr", "p-host"] {
            run(&["ip", "-n", p, "link", "set", port, "master", "br0"]);
        }
        run(&[
            "ip",
            "-n",
            r,
            "addr",
            "add",
            &format!("{ROUTER_PUBLIC}/24"),
            "dev",
            "wan",
        ]);
        run(&[
            "ip",
            "-n",
            r,
            "addr",
            "add",
            &format!("{ROUTER_LAN}/24"),
            "dev",
            "lan",
        ]);
        run(&[
            "ip",
            "-n",
            h,
            "addr",
            "add",
            &format!("{HOST}/24"),
            "dev",
            "eth0",
        ]);
        run(&[
            "ip",
            "-n",
            v,
            "addr",
            "add",
            &format!("{PRIVATE}/24"),
            "dev",
            "eth0",
        ]);
        run(&["ip", "-n", v, "route", "add", "default", "via", ROUTER_LAN]);
        lab.exec_ok(r, &["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
        let mut rule = vec![
            "iptables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            "wan",
            "-j",
            "MASQUERADE",
        ];
        if nat == Nat::RandomFully {
            rule.push("--random-fully");
        }
        lab.exec_ok(r, &rule);
        lab
    }

    fn namespaces(&self) -> [&str; 4] {
        [&self.public, &self.router, &self.private, &self.host]
    }

    /// A veth pair with one end in each namespace, both up.
    fn veth(&self, ns_a: &str, name_a: &str, ns_b: &str, name_b: &str) {
        run(&[
            "ip", "link", "add", name_a, "netns", ns_a, "type", "veth", "peer", "name", name_b,
            "netns", ns_b,
        ]);
        run(&["ip", "-n", ns_a, "link", "set", name_a, "up"]);
        run(&["ip", "-n", ns_b, "link", "set", name_b, "up"]);
    }

    pub fn exec(&self, ns: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).args(args);
        c
    }

    pub fn exec_ok(&self, ns: &str, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(args);
        run(&full)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `args` in `ns`, output to `<dir>/<name>.log`.
    pub fn spawn(&self, ns: &str, name: &str, args: &[&str], envs: &[(&str, &str)]) -> Proc {
        let log = std::fs::File::create(self.path(&format!("{name}.log"))).unwrap();
        let child = self
            .exec(ns, args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc {
            name: name.into(),
            child,
        }
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{name}.log"))).unwrap_or_default()
    }

    /// Waits until something in `ns` listens on `addr` (`udp` or `tcp`).
    pub fn wait_listening(&self, ns: &str, proto: &str, addr: &str) {
        let flag = if proto == "udp" { "-Hlnu" } else { "-Hlnt" };
        let start = Instant::now();
        loop {
            if self.exec_ok(ns, &["ss", flag]).contains(addr) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "nothing listens on {proto} {addr} in {ns}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills whatever still runs in the lab's namespaces: the safety net
    /// for processes a failed test did not get to drop.
    fn kill_all(&self) {
        for ns in self.namespaces() {
            let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
                continue;
            };
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.kill_all();
        for ns in self.namespaces() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}
