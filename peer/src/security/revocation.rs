//! The revocation list: peers refused at handshake time whatever their
//! certificate says. A plain text file, because operators edit it by hand
//! in an emergency and the operator writes it into a ConfigMap:
//!
//! ```text
//! # Lines starting with '#' and blank lines are ignored.
//! peer node-7            # key leaked 2026-11-02
//! serial 00:8f:1a:22     # replaced certificate of node-3
//! ```
//!
//! `peer <peer-id>` refuses every certificate issued to that peer id (the
//! `urn:sorcha:peer:` URI SAN); `serial <hex>` refuses one certificate, with
//! the serial written as any common tool prints it (colons, `0x`, leading
//! zeros and case do not matter). Text after `#` is the reason, logged when
//! the entry refuses a peer. Any other line is an error naming its number,
//! so a typo does not silently leave a banned peer in.
use std::collections::HashMap;
use std::path::Path;

use super::error::{Result, SecurityError};
use super::peer_cert::{PeerCertificate, is_valid_peer_id, normalize_serial};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationList {
    /// Peer id → reason ("" when none was written).
    peers: HashMap<String, String>,
    /// Normalized serial → reason.
    serials: HashMap<String, String>,
}

/// Why a certificate is refused, for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// `peer node-7` or `serial 8f1a22`: the entry that matched.
    pub entry: String,
    pub reason: String,
}

impl std::fmt::Display for Revoked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.reason.is_empty() {
            write!(f, "revoked by entry \"{}\"", self.entry)
        } else {
            write!(f, "revoked by entry \"{}\" ({})", self.entry, self.reason)
        }
    }
}

impl RevocationList {
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let mut list = RevocationList::default();
        for (i, raw) in text.lines().enumerate() {
            let err = |message: String| SecurityError::RevocationSyntax {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            };
            let (body, reason) = match raw.split_once('#') {
                Some((b, r)) => (b.trim(), r.trim()),
                None => (raw.trim(), ""),
            };
            if body.is_empty() {
                continue;
            }
            let mut words = body.split_whitespace();
            let (kind, value) = (words.next().unwrap_or(""), words.next());
            if words.next().is_some() {
                return Err(err(format!(
                    "{body:?} has more than two words; expected \"peer <peer-id>\" or \
                     \"serial <hex>\" (put a reason after '#')"
                )));
            }
            let Some(value) = value else {
                return Err(err(format!(
                    "{body:?} has no value; expected \"peer <peer-id>\" or \"serial <hex>\""
                )));
            };
            match kind.to_ascii_lowercase().as_str() {
                "peer" if is_valid_peer_id(value) => {
                    list.peers.insert(value.to_string(), reason.to_string());
                }
                "peer" => {
                    return Err(err(format!(
                        "{value:?} is not a peer id (1 to 128 characters of A-Z, a-z, 0-9, \
                         '.', '_' and '-')"
                    )));
                }
                "serial" => {
                    let s = normalize_serial(value);
                    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(err(format!(
                            "{value:?} is not a serial number (hex digits, optionally \
                             separated by ':')"
                        )));
                    }
                    list.serials.insert(s, reason.to_string());
                }
                _ => {
                    return Err(err(format!(
                        "unknown entry kind {kind:?}; expected \"peer\" or \"serial\""
                    )));
                }
            }
        }
        Ok(list)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes = super::identity::read("revocation list", path)?;
        Self::parse_bytes(path, &bytes)
    }

    pub(crate) fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            SecurityError::invalid(
                "revocation list",
                path,
                format!("not UTF-8 text ({e})"),
                "a text file of \"peer <id>\" and \"serial <hex>\" lines",
            )
        })?;
        Self::parse(path, text)
    }

    /// The entry refusing `cert`, if any. The serial is checked first: it
    /// is the more specific entry, so its reason is the better one to log.
    pub fn check(&self, cert: &PeerCertificate) -> Option<Revoked> {
        if let Some(reason) = self.serials.get(&cert.serial) {
            return Some(Revoked {
                entry: format!("serial {}", cert.serial),
                reason: reason.clone(),
            });
        }
        let id = cert.peer_id.as_ref()?;
        self.peers.get(id).map(|reason| Revoked {
            entry: format!("peer {id}"),
            reason: reason.clone(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty() && self.serials.is_empty()
    }

    /// Number of entries (peers + serials).
    pub fn len(&self) -> usize {
        self.peers.len() + self.serials.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn cert(id: Option<&str>, serial: &str) -> PeerCertificate {
        PeerCertificate {
            peer_id: id.map(Into::into),
            dns_names: vec![],
            serial: normalize_serial(serial),
            not_after: UNIX_EPOCH,
            role: None,
        }
    }

    #[test]
    fn parses_entries_comments_and_reasons() {
        let text =
            "# banned peers\n\npeer node-7   # key leaked\nSERIAL 00:8F:1A\n  serial 0x0b # old\n";
        let l = RevocationList::parse(Path::new("rl.txt"), text).unwrap();
        assert_eq!(l.len(), 3);
        let r = l.check(&cert(Some("node-7"), "99")).unwrap();
        assert_eq!(r.entry, "peer node-7");
        assert_eq!(r.reason, "key leaked");
        assert!(r.to_string().contains("key leaked"));
        let r = l.check(&cert(Some("node-1"), "8f1a")).unwrap();
        assert_eq!(r.entry, "serial 8f1a");
        assert_eq!(r.reason, "");
        assert!(l.check(&cert(Some("node-1"), "b")).is_some());
        assert!(l.check(&cert(Some("node-1"), "c")).is_none());
        assert!(l.check(&cert(None, "c")).is_none());
        assert!(
            RevocationList::parse(Path::new("x"), "")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        for (text, line, needle) in [
            ("peer a\nban node-1\n", 2, "unknown entry kind"),
            ("peer\n", 1, "no value"),
            ("peer a b\n", 1, "more than two words"),
            ("peer bad/id\n", 1, "not a peer id"),
            ("\n\nserial zz:11\n", 3, "not a serial"),
        ] {
            match RevocationList::parse(Path::new("/etc/rl.txt"), text) {
                Err(SecurityError::RevocationSyntax {
                    line: l, message, ..
                }) => {
                    assert_eq!(l, line, "{text:?}");
                    assert!(message.contains(needle), "{message}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let e = RevocationList::parse_bytes(Path::new("/etc/rl.txt"), &[0xff, 0xfe]).unwrap_err();
        assert!(e.to_string().contains("UTF-8"), "{e}");
    }
}
