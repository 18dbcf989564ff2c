//! The checked `toolSearch` settings (top level, or a profile's own) and their validation.

use super::checks::{check_readable, check_tls, check_url};
use super::duration::parse_duration;
use super::schema::{EmbeddingsSpec, TlsSpec, ToolSearchSpec};
use std::path::PathBuf;
use std::time::Duration;

/// Checked tool search settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSearch {
    /// Globs of exposed tool names listed beside the search tools.
    pub visible: Vec<String>,
    /// Matches a search returns by default.
    pub results: usize,
    /// The embedding endpoint of the semantic signal, when one is configured.
    pub embeddings: Option<Embeddings>,
}

/// A checked embedding endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// The endpoint (`http` or `https`).
    pub url: http::Uri,
    /// The model name sent with each request.
    pub model: String,
    /// Where the bearer API key is, when the endpoint wants one.
    pub api_key_file: Option<PathBuf>,
    /// Deadline of one request.
    pub timeout: Duration,
    /// TLS settings for an `https` endpoint.
    pub tls: Option<TlsSpec>,
}

/// Matches a search returns when neither the agent nor the config says.
pub const DEFAULT_SEARCH_RESULTS: usize = 8;
/// Most matches one search returns.
pub const MAX_SEARCH_RESULTS: usize = 50;
/// Longest query `find_tools` takes, in characters. An embedding model reads its first few hundred words
/// at most (all-MiniLM-L6-v2: 256 tokens), and every word of a query is looked up in the index on the
/// event loop, so a pasted document is refused with the limit rather than searched for.
pub const MAX_QUERY_CHARS: usize = 2_000;
/// Deadline of one embedding request when the config does not say: a query waits for it, so it is short.
pub const DEFAULT_EMBEDDINGS_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks tool search settings; each bad value is reported under its key and replaced by its default (an
/// unusable `embeddings` by none).
pub(super) fn check_tool_search(spec: ToolSearchSpec, report: &mut impl FnMut(&str, String)) -> ToolSearch {
    let results = spec.results.unwrap_or(DEFAULT_SEARCH_RESULTS);
    if !(1..=MAX_SEARCH_RESULTS).contains(&results) {
        report(
            "results",
            format!("{results} is out of range: a search returns 1 to {MAX_SEARCH_RESULTS} matches"),
        );
    }
    for (i, glob) in spec.visible.iter().enumerate() {
        if glob.is_empty() {
            report(&format!("visible[{i}]"), "an empty pattern matches nothing".into());
        }
    }
    let embeddings = spec
        .embeddings
        .and_then(|spec| check_embeddings(spec, &mut |key, message| report(&format!("embeddings.{key}"), message)));
    ToolSearch {
        visible: spec.visible,
        results: results.clamp(1, MAX_SEARCH_RESULTS),
        embeddings,
    }
}

fn check_embeddings(spec: EmbeddingsSpec, report: &mut impl FnMut(&str, String)) -> Option<Embeddings> {
    let url = check_url(&spec.url, false)
        .map_err(|e| report("url", e.to_string()))
        .ok();
    if spec.model.trim().is_empty() {
        report("model", "name the model the endpoint serves".into());
    }
    if let Some(file) = &spec.api_key_file {
        check_readable(file).unwrap_or_else(|e| report("apiKeyFile", e.to_string()));
    }
    let timeout = match spec.timeout.as_deref() {
        None => Some(DEFAULT_EMBEDDINGS_TIMEOUT),
        Some(text) => match parse_duration(text) {
            Ok(timeout) if !timeout.is_zero() => Some(timeout),
            Ok(_) => {
                report("timeout", "must be longer than zero".into());
                None
            }
            Err(e) => {
                report("timeout", e.to_string());
                None
            }
        },
    };
    let mut tls_ok = true;
    if let Some(tls) = &spec.tls {
        if url.as_ref().is_some_and(|u| u.scheme_str() == Some("http")) {
            report("tls", "is set but `url` is plain http://; use https://".into());
            tls_ok = false;
        }
        check_tls(tls, &mut |key, message| {
            tls_ok = false;
            report(key, message)
        });
    }
    Some(Embeddings {
        url: url?,
        model: Some(spec.model).filter(|m| !m.trim().is_empty())?,
        api_key_file: spec.api_key_file,
        timeout: timeout?,
        tls: spec.tls.filter(|_| tls_ok),
    })
}
