//! Small syntax checks for the address-like settings: host names,
//! `host:port` pairs and `http(s)://` URLs. Each returns `Err(reason)`.
use std::net::{IpAddr, Ipv6Addr};

/// An RFC 1123 host name: dot-separated labels of letters, digits and `-`,
/// each 1..=63 long and not starting or ending with `-`; at most 253 chars;
/// an optional trailing dot. The last label may not be all digits, so a
/// malformed IPv4 address (`999.1.1.1`) is not taken for a name.
pub(crate) fn is_dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = s.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    labels.iter().all(label_ok)
        && !labels
            .last()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

/// An IP address or a DNS host name.
pub(crate) fn is_host(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok() || is_dns_name(s)
}

fn check_port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("port {p:?} is not a number from 1 to 65535")),
        Ok(n) => Ok(n),
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; the port is required when
/// `need_port` is set.
pub(crate) fn check_authority(s: &str, need_port: bool) -> Result<(), String> {
    let port = if let Some(rest) = s.strip_prefix('[') {
        let Some((inner, after)) = rest.split_once(']') else {
            return Err("missing ']' after the IPv6 address".into());
        };
        if inner.parse::<Ipv6Addr>().is_err() {
            return Err(format!("{inner:?} is not an IPv6 address"));
        }
        match after {
            "" => None,
            a => Some(
                a.strip_prefix(':')
                    .ok_or_else(|| format!("unexpected {a:?} after ']'"))?,
            ),
        }
    } else {
        let (host, port) = match s.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                return Err("IPv6 addresses need brackets, e.g. [::1]:3478".into());
            }
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        if !is_host(host) {
            return Err(format!("{host:?} is not an IP address or DNS host name"));
        }
        port
    };
    match port {
        Some(p) => check_port(p).map(drop),
        None if need_port => Err("the port is missing".into()),
        None => Ok(()),
    }
}

/// `http://` or `https://` followed by a host and optional port; a path,
/// query or fragment may follow. User info (`user@`) is not allowed.
pub(crate) fn check_http_url(s: &str) -> Result<(), String> {
    let lower = s.to_ascii_lowercase();
    let scheme_len = if lower.starts_with("http://") {
        7
    } else if lower.starts_with("https://") {
        8
    } else {
        return Err("the scheme must be http:// or https://".into());
    };
    let rest = &s[scheme_len..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err("the host is missing".into());
    }
    if authority.contains('@') {
        return Err("user names and passwords are not allowed in the URL".into());
    }
    check_authority(authority, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        for ok in ["localhost", "a.b-c.example", "peer1.local.", "x", "1a.com"] {
            assert!(is_dns_name(ok), "{ok}");
        }
        let long_label = "a".repeat(64);
        let long_name = ["abc"; 70].join(".");
        for bad in [
            "",
            ".",
            "-a.com",
            "a-.com",
            "a..b",
            "a_b.com",
            "999.1.1.1",
            "1.2.3",
            "a b",
            &long_label,
            &long_name,
        ] {
            assert!(!is_dns_name(bad), "{bad}");
        }
        assert!(is_host("10.0.0.1") && is_host("::1") && is_host("node-1"));
    }

    #[test]
    fn host_port_pairs() {
        for ok in [
            "127.0.0.1:3478",
            "stun.local:19302",
            "[::1]:3478",
            "h:1",
            "h:65535",
        ] {
            assert_eq!(check_authority(ok, true), Ok(()), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            "stun.local",
            "h:0",
            "h:65536",
            "h:x",
            ":3478",
            "::1:3478",
            "[::1]",
            "[::1]3478",
            "[zz]:1",
            "[::1:1",
            "bad_host:1",
            "",
        ] {
            assert!(check_authority(bad, true).is_err(), "{bad}");
        }
        assert_eq!(check_authority("[::1]", false), Ok(()));
    }

    #[test]
    fn http_urls() {
        for ok in [
            "http://127.0.0.1:5001",
            "https://peer.example",
            "HTTPS://peer.example:443/path?q#f",
            "http://[::1]:80/",
            "http://localhost",
        ] {
            assert_eq!(check_http_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ftp://a:1",
            "127.0.0.1:5001",
            "http://",
            "http:///x",
            "http://u:p@host:1",
            "http://host:0",
            "http://host:99999",
            "http://bad host",
            "https://a..b",
        ] {
            assert!(check_http_url(bad).is_err(), "{bad}");
        }
    }
}
