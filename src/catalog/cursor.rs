//! mcplex's own opaque pagination cursors for merged lists.

use base64::Engine;
use base64::prelude::BASE64_URL_SAFE_NO_PAD;

const TAG: &str = "mcplex1:";

/// Encodes the offset of the next page.
pub fn encode(offset: usize) -> String {
    BASE64_URL_SAFE_NO_PAD.encode(format!("{TAG}{offset}"))
}

/// Decodes a cursor made by [`encode`]; any other string is an error naming the cursor.
pub fn decode(cursor: &str) -> Result<usize, String> {
    BASE64_URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(TAG)?.parse().ok())
        .ok_or_else(|| format!("invalid cursor `{cursor}`: pass back a nextCursor exactly as mcplex returned it"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_rejects_foreign_cursors() {
        assert_eq!(super::decode(&super::encode(300)), Ok(300));
        assert!(super::decode("abc").unwrap_err().contains("invalid cursor `abc`"));
    }
}
