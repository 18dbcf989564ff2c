//! Reading an error's causes: transport errors hide the useful part in `source()`.

/// True when a rustls error is among `error`'s causes. Transports wrap it in `io::Error`s, whose `source()`
/// skips the wrapped error itself, so each wrapper is also opened with `get_ref`.
pub fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut pending: Vec<&(dyn std::error::Error + 'static)> = vec![error];
    // Bounded: an error chain is short, and this only runs on failures.
    for _ in 0..32 {
        let Some(error) = pending.pop() else { return false };
        if error.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = error.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
            pending.push(inner);
        }
        pending.extend(error.source());
    }
    false
}

/// Flattens an error and its causes into one line (transport errors hide the useful part in `source()`).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.ends_with(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}
