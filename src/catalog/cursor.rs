//! mcplex's own opaque pagination cursors for merged lists.

use base64::Engine;
use base64::prelude::BASE64_URL_SAFE_NO_PAD;

const TAG: &str = "mcplex1:";

/// A cursor mcplex did not make.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor `{0}`: pass back a nextCursor exactly as mcplex returned it")]
pub struct InvalidCursor(pub String);

/// Encodes the offset of the next page.
pub fn encode(offset: usize) -> String {
    BASE64_URL_SAFE_NO_PAD.encode(format!("{TAG}{offset}"))
}

/// Decodes a cursor made by [`encode`]; any other string is an error naming the cursor.
pub fn decode(cursor: &str) -> Result<usize, InvalidCursor> {
    BASE64_URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(TAG)?.parse().ok())
        .ok_or_else(|| InvalidCursor(cursor.chars().take(100).collect()))
}

/// The `start..end` range of the page that begins at `offset`, clamped to `len` (never overflows).
pub fn page(offset: usize, page_size: usize, len: usize) -> std::ops::Range<usize> {
    let end = offset.saturating_add(page_size).min(len);
    offset.min(end)..end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_foreign_cursors() {
        assert_eq!(decode(&encode(300)), Ok(300));
        assert!(decode("abc").unwrap_err().to_string().contains("invalid cursor `abc`"));
    }

    #[test]
    fn pages_are_clamped() {
        assert_eq!(page(0, 10, 25), 0..10);
        assert_eq!(page(20, 10, 25), 20..25);
        assert_eq!(page(usize::MAX, 10, 25), 25..25);
        assert_eq!(page(decode(&encode(usize::MAX)).unwrap(), usize::MAX, 3), 3..3);
    }
}
