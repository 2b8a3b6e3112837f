//! The fallback when STUN yields nothing: a URL that answers with the
//! caller's IP address as plain text ("what is my IP" services). The
//! body must be exactly one IP address, give or take surrounding
//! whitespace; anything else (HTML, JSON, an error page) is rejected.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::stun::lookup_error;
use crate::Result;
use crate::config::IpProtocol;

/// Longer than any IPv6 address with whitespace; a bigger body is not an
/// answer, and is not read past this.
const MAX_BODY: usize = 256;

/// A client for lookup services bound to `local` (the node's bound
/// address), else pinned to one address family by binding the unspecified
/// address, so the service sees (and reports) that family.
pub fn client(
    local: Option<IpAddr>,
    family: IpProtocol,
    timeout: Duration,
) -> Result<reqwest::Client> {
    let local: IpAddr = local.unwrap_or(match family {
        IpProtocol::IPv4 => Ipv4Addr::UNSPECIFIED.into(),
        IpProtocol::IPv6 => Ipv6Addr::UNSPECIFIED.into(),
    });
    reqwest::Client::builder()
        .timeout(timeout)
        .local_address(local)
        // Through a proxy the service would report the proxy's address.
        .no_proxy()
        .user_agent(concat!("sorcha-peer/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| lookup_error("HTTP client", e))
}

/// Asks `url` for this host's public address.
pub async fn lookup(client: &reqwest::Client, url: &str) -> Result<IpAddr> {
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| lookup_error(url, error_chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(lookup_error(url, format!("answered {status}")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| lookup_error(url, error_chain(&e)))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY {
            return Err(lookup_error(
                url,
                format!("answer longer than {MAX_BODY} bytes is not an IP address"),
            ));
        }
    }
    parse_body(&body).map_err(|why| lookup_error(url, why))
}

/// The body as an IP address, or why it is not one.
pub fn parse_body(body: &[u8]) -> std::result::Result<IpAddr, String> {
    let text = std::str::from_utf8(body).map_err(|_| "answer is not UTF-8 text".to_owned())?;
    let text = text.trim();
    text.parse::<IpAddr>().map_err(|_| {
        let shown: String = text.chars().take(40).collect();
        format!("answer {shown:?} is not an IP address")
    })
}

/// reqwest's top-level message ("error sending request for url ...")
/// repeats the URL and hides the cause (connection refused, timeout,
/// certificate); show the causes instead.
fn error_chain(e: &dyn std::error::Error) -> String {
    let Some(first) = e.source() else {
        return e.to_string();
    };
    let mut msg = first.to_string();
    let mut source = first.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_must_be_exactly_an_ip_address() {
        assert_eq!(
            parse_body(b"198.18.0.1\n"),
            Ok("198.18.0.1".parse().unwrap())
        );
        assert_eq!(
            parse_body(b"  2a00::1 \r\n"),
            Ok("2a00::1".parse().unwrap())
        );
        for bad in [
            &b""[..],
            b"<html>198.18.0.1</html>",
            b"{\"ip\":\"198.18.0.1\"}",
            b"198.18.0.1:80",
            b"198.18.0.1 extra",
            b"999.1.1.1",
            b"\xff\xfe",
        ] {
            assert!(parse_body(bad).is_err(), "{bad:?}");
        }
    }
}
