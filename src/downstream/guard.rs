//! DNS-rebinding protection: only loopback `Host` and `Origin` values may reach the endpoint.

use http::{HeaderMap, Uri, header};

/// Why a request was refused with 403.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The Host (or HTTP/2 authority) is not a loopback name.
    #[error("Host `{0}` is not a loopback address; mcplex only answers requests made to 127.0.0.1, [::1] or localhost")]
    Host(String),
    /// The Origin is not a loopback origin.
    #[error("Origin `{0}` is not a loopback origin; browsers on other sites may not call mcplex")]
    Origin(String),
}

/// Checks Host and Origin.
pub fn check(uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
    // Borrowed: every request passes here, and only a refusal needs its own copy.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    if let Some(host) = host
        && !is_loopback_authority(host)
    {
        return Err(Refusal::Host(host.to_owned()));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("(not text)");
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if !authority.is_some_and(is_loopback_authority) {
            return Err(Refusal::Origin(origin.to_owned()));
        }
    }
    Ok(())
}

fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, port)) if port.is_empty() || port.starts_with(':') => host,
            _ => return false,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            Some(_) => return false,
            None => authority,
        }
    };
    // The name agents use, checked before parsing an address.
    host == "127.0.0.1"
        || host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        headers
    }

    #[test]
    fn loopback_passes_others_are_refused() {
        let uri = Uri::from_static("/mcp");
        for ok in ["127.0.0.1:15301", "localhost", "[::1]:80", "127.0.0.2", "LOCALHOST:1"] {
            assert_eq!(check(&uri, &headers(ok, Some("http://localhost:6274"))), Ok(()), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:15301",
            "127.0.0.1.evil.example",
            "[::2]:1",
        ] {
            assert!(
                matches!(check(&uri, &headers(bad, None)), Err(Refusal::Host(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            check(&uri, &headers("localhost", Some("https://evil.example"))),
            Err(Refusal::Origin(_))
        ));
        assert!(matches!(
            check(&uri, &headers("localhost", Some("null"))),
            Err(Refusal::Origin(_))
        ));
    }
}
