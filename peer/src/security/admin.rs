//! Who may call admin operations (ban/unban, remove peer, anything that
//! changes a node). With `Security.AdminTokenFile` set, every caller must
//! present `Authorization: Bearer <token>`, from any address. Without it,
//! only loopback callers are served: an operator on the host (or the CLI
//! in the pod) can act, other peers never can, whatever their certificate
//! says, because peer identity and admin rights are separate things.
use std::net::IpAddr;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::error::{Result, SecurityError};
use crate::config::SecurityConfig;

/// Shortest accepted token: guessing must be hopeless.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRefusal {
    /// No token is configured and the caller is not on loopback.
    NotLoopback,
    /// A token is configured and none (or no bearer token) was presented.
    MissingToken,
    WrongToken,
}

impl AdminRefusal {
    pub fn label(self) -> &'static str {
        match self {
            AdminRefusal::NotLoopback => "not_loopback",
            AdminRefusal::MissingToken => "missing_token",
            AdminRefusal::WrongToken => "wrong_token",
        }
    }
}

impl std::fmt::Display for AdminRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AdminRefusal::NotLoopback => {
                "admin operations are served only to loopback callers when no \
                 Security.AdminTokenFile is configured"
            }
            AdminRefusal::MissingToken => "admin operations need an Authorization: Bearer token",
            AdminRefusal::WrongToken => "the admin token is wrong",
        })
    }
}

/// The admin credential check. Holds only the token's SHA-256, so the
/// comparison's timing depends on hash bytes, not on the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminAuth {
    token_hash: Option<[u8; 32]>,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAuth")
            .field("token", &self.token_hash.map(|_| "<configured>"))
            .finish()
    }
}

impl AdminAuth {
    /// Loopback only, no token.
    pub fn loopback_only() -> Self {
        AdminAuth { token_hash: None }
    }

    /// Reads `Security.AdminTokenFile` when set. Surrounding whitespace
    /// (the newline editors and `echo` add) is not part of the token.
    pub fn from_config(s: &SecurityConfig) -> Result<Self> {
        match &s.admin_token_file {
            None => Ok(Self::loopback_only()),
            Some(path) => Self::from_file(path),
        }
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = super::identity::read("admin token (AdminTokenFile)", path)?;
        let invalid = |m: String| {
            SecurityError::invalid(
                "admin token (AdminTokenFile)",
                path,
                m,
                "one line holding a token of at least 16 characters",
            )
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid("not UTF-8 text".into()))?;
        let token = text.trim();
        if token.len() < MIN_TOKEN_LEN {
            return Err(invalid(format!(
                "the token has {} characters, fewer than {MIN_TOKEN_LEN}",
                token.len()
            )));
        }
        if token.contains(char::is_whitespace) {
            return Err(invalid("the token contains whitespace".into()));
        }
        Ok(AdminAuth {
            token_hash: Some(Sha256::digest(token.as_bytes()).into()),
        })
    }

    pub fn token_configured(&self) -> bool {
        self.token_hash.is_some()
    }

    /// Decides one admin call from `remote` with the request's
    /// `Authorization` header value, if any.
    pub fn authorize(
        &self,
        remote: IpAddr,
        authorization: Option<&str>,
    ) -> Result<(), AdminRefusal> {
        let Some(expected) = &self.token_hash else {
            return if is_loopback(remote) {
                Ok(())
            } else {
                Err(AdminRefusal::NotLoopback)
            };
        };
        let presented = authorization
            .and_then(|h| {
                let (scheme, token) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(AdminRefusal::MissingToken)?;
        let got: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Constant time over the 32 bytes.
        let diff = got
            .iter()
            .zip(expected.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 {
            Ok(())
        } else {
            Err(AdminRefusal::WrongToken)
        }
    }
}

/// 127.0.0.0/8, ::1, and IPv4-mapped loopback (a dual-stack listener sees
/// `::ffff:127.0.0.1`).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-admin";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn with_token() -> (tempfile::TempDir, AdminAuth) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
        let cfg = SecurityConfig {
            admin_token_file: Some(path),
            ..SecurityConfig::default()
        };
        (dir, AdminAuth::from_config(&cfg).unwrap())
    }

    #[test]
    fn without_a_token_only_loopback_is_served() {
        let a = AdminAuth::from_config(&SecurityConfig::default()).unwrap();
        assert!(!a.token_configured());
        for ok in ["127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(a.authorize(ip(ok), None), Ok(()), "{ok}");
        }
        for no in ["10.0.0.1", "0.0.0.0", "fe80::1", "::ffff:10.0.0.1"] {
            assert_eq!(
                a.authorize(ip(no), Some(&format!("Bearer {TOKEN}"))),
                Err(AdminRefusal::NotLoopback),
                "{no}"
            );
        }
    }

    #[test]
    fn with_a_token_everyone_must_present_it() {
        let (_dir, a) = with_token();
        assert!(a.token_configured());
        assert!(!format!("{a:?}").contains(TOKEN));
        for remote in ["127.0.0.1", "10.0.0.1"] {
            let r = ip(remote);
            assert_eq!(a.authorize(r, Some(&format!("Bearer {TOKEN}"))), Ok(()));
            assert_eq!(a.authorize(r, Some(&format!("bearer  {TOKEN} "))), Ok(()));
            assert_eq!(a.authorize(r, None), Err(AdminRefusal::MissingToken));
            assert_eq!(
                a.authorize(r, Some("Bearer ")),
                Err(AdminRefusal::MissingToken)
            );
            assert_eq!(
                a.authorize(r, Some(&format!("Basic {TOKEN}"))),
                Err(AdminRefusal::MissingToken)
            );
            assert_eq!(
                a.authorize(r, Some("Bearer 0123456789abcdef-admiN")),
                Err(AdminRefusal::WrongToken)
            );
        }
    }

    #[test]
    fn bad_token_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        for (content, needle) in [
            (&b"short\n"[..], "fewer than 16"),
            (b"0123456789abcdef 0123", "whitespace"),
            (b"\xff\xfe0123456789abcdef", "UTF-8"),
        ] {
            let p = dir.path().join("t");
            std::fs::write(&p, content).unwrap();
            let e = AdminAuth::from_file(&p).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("AdminTokenFile"), "{e}");
        }
        let e = AdminAuth::from_file(&dir.path().join("missing")).unwrap_err();
        assert_eq!(e.label(), "security_file_read");
    }
}
