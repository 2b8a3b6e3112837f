//! The lab's servers and clients: coturn, the test binary's helpers, and
//! `sorcha-peer` itself (the `address` command, nodes, status).
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use super::{Lab, Proc, helper};

impl Lab {
    /// Debian's coturn as a STUN-only server on `ip:3478` in the public segment.
    pub fn coturn(&self, ip: &str) -> Proc {
        let name = format!("coturn-{ip}");
        let d = self.dir.path();
        let (log, pid, db) = (
            d.join(format!("{name}.turnlog")),
            d.join(format!("{name}.pid")),
            d.join(format!("{name}.db")),
        );
        let p = self.spawn(
            &self.public,
            &name,
            &[
                "turnserver",
                "-n",
                "--stun-only",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--no-rfc5780",
                "--no-software-attribute",
                &format!("--listening-ip={ip}"),
                "--listening-port=3478",
                "--simple-log",
                &format!("--log-file={}", log.display()),
                &format!("--pidfile={}", pid.display()),
                &format!("--db={}", db.display()),
            ],
            &[],
        );
        self.wait_listening(&self.public, "udp", &format!("{ip}:3478"));
        p
    }

    /// One of the test binary's helpers (see `helper`) in `ns`.
    pub fn helper(&self, ns: &str, mode: &str, addr: &str, proto: &str) -> Proc {
        let exe = std::env::current_exe().unwrap();
        let spec = format!("{mode} {addr}");
        let p = self.spawn(
            ns,
            &format!("helper-{mode}-{addr}"),
            &[
                exe.to_str().unwrap(),
                "--exact",
                "lab_helper",
                "--nocapture",
                "--test-threads=1",
            ],
            &[(helper::ENV, &spec)],
        );
        self.wait_listening(ns, proto, addr);
        p
    }

    /// `sorcha-peer ARGS` run to completion in `ns`.
    pub fn cli(&self, ns: &str, args: &[&str]) -> Output {
        self.exec(ns, &[env!("CARGO_BIN_EXE_sorcha-peer")])
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    }

    /// `sorcha-peer address ... --json`, parsed.
    pub fn address(&self, ns: &str, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["address", "--json"];
        full.extend_from_slice(args);
        let out = self.cli(ns, &full);
        assert!(
            out.status.success(),
            "address failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
        })
    }

    /// Writes a config file and returns its path.
    pub fn config(&self, name: &str, yaml: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, yaml).unwrap();
        p
    }

    /// `sorcha-peer run --config FILE` in `ns`; waits until its API answers.
    pub fn node(&self, ns: &str, name: &str, config: &Path, url: &str) -> Proc {
        let bin = env!("CARGO_BIN_EXE_sorcha-peer");
        let cfg = config.to_str().unwrap();
        let p = self.spawn(
            ns,
            name,
            &[bin, "run", "--config", cfg],
            &[("RUST_LOG", "info")],
        );
        self.wait_until(&format!("{name} answers"), Duration::from_secs(20), || {
            self.status(ns, url).is_some()
        });
        p
    }

    /// The node's `/api/v1/status`, through the CLI in `ns`.
    pub fn status(&self, ns: &str, url: &str) -> Option<serde_json::Value> {
        let out = self.cli(ns, &["status", "--peer", url, "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// A GET from inside `ns`, by the test binary's helper.
    pub fn http_get(&self, ns: &str, url: &str) -> String {
        let exe = std::env::current_exe().unwrap();
        let out = self
            .exec(
                ns,
                &[
                    exe.to_str().unwrap(),
                    "--exact",
                    "lab_helper",
                    "--nocapture",
                    "--test-threads=1",
                ],
            )
            .env(helper::ENV, format!("get {url}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        helper::extract_body(&text)
    }

    pub fn wait_until(&self, what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
