//! Checks shared by the config's sections: URLs, TLS files, readable files.

use super::schema::TlsSpec;
use std::path::Path;

/// Why a target's `url` was refused.
#[derive(Debug, thiserror::Error)]
pub(super) enum UrlError {
    #[error("`{text}` is not a URL: {source}")]
    NotAUrl {
        text: String,
        source: http::uri::InvalidUri,
    },
    #[error("`tls` is set but the URL is not https")]
    PlainWithTls,
    #[error("`{0}` has no host")]
    NoHost(String),
    #[error("`{0}` must start with http:// or https://")]
    Scheme(String),
}

/// The URL `text`, when it is absolute `http` or `https` with a host (and `https` when TLS is set).
pub(super) fn check_url(text: &str, has_tls: bool) -> Result<http::Uri, UrlError> {
    let url: http::Uri = text.parse().map_err(|source| UrlError::NotAUrl {
        text: text.into(),
        source,
    })?;
    match url.scheme_str() {
        Some("http") if has_tls => Err(UrlError::PlainWithTls),
        Some("http") | Some("https") => match url.host() {
            Some(host) if !host.is_empty() => Ok(url),
            _ => Err(UrlError::NoHost(text.into())),
        },
        _ => Err(UrlError::Scheme(text.into())),
    }
}

/// Reports (under `tls.*` keys) unreadable files, half an mTLS pair and a bad server name.
pub(super) fn check_tls(tls: &TlsSpec, fail: &mut impl FnMut(&str, String)) {
    for (key, path) in [("tls.ca", &tls.ca), ("tls.cert", &tls.cert), ("tls.key", &tls.key)] {
        if let Some(path) = path {
            check_readable(path).unwrap_or_else(|e| fail(key, e.to_string()));
        }
    }
    if tls.cert.is_some() != tls.key.is_some() {
        fail(
            "tls",
            "`cert` and `key` go together: set both for mTLS, or neither".into(),
        );
    }
    if let Some(name) = &tls.server_name
        && rustls_pki_types::ServerName::try_from(name.as_str()).is_err()
    {
        fail("tls.serverName", format!("`{name}` is not a DNS name or IP address"));
    }
}

/// A file the config names that cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot read `{}`: {source}", path.display())]
pub(super) struct Unreadable {
    path: std::path::PathBuf,
    source: std::io::Error,
}

/// Ok when `path` can be opened for reading.
pub(super) fn check_readable(path: &Path) -> Result<(), Unreadable> {
    std::fs::File::open(path).map(drop).map_err(|source| Unreadable {
        path: path.into(),
        source,
    })
}
