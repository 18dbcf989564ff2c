//! The digest a pin records: SHA-256 over a definition's RFC 8785 canonical JSON (JSON Canonicalization
//! Scheme), so that formatting, member order and escapes do not count and every other change does.

use std::fmt;
use std::str::FromStr;

/// The SHA-256 of a definition's RFC 8785 canonical JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of one listed item's JSON text. Formatting and member order do not count; any other
    /// change does. Text that has no canonical form (a number out of range, a lone surrogate) is hashed as
    /// it is: `mcplex pins` computes the same, so such an item can still be pinned.
    pub fn of_item(text: &str) -> Self {
        let canonical = serde_json_canonicalizer::pipe(text);
        let bytes = canonical.as_ref().map_or(text.as_bytes(), |c| c.as_bytes());
        Self::of_bytes(bytes)
    }

    fn of_bytes(bytes: &[u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
        let mut out = [0; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A pin that is not a SHA-256 in the form the config takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a SHA-256 digest: write 64 lowercase hex digits, as `mcplex pins` prints them")]
pub struct NotADigest(pub String);

impl FromStr for Digest {
    type Err = NotADigest;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let lowercase_hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        if text.len() != 64 || !text.chars().all(lowercase_hex) {
            return Err(NotADigest(text.to_owned()));
        }
        let mut out = [0; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| NotADigest(text.to_owned()))?;
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        serde_json_canonicalizer::pipe(text).unwrap()
    }

    /// RFC 8785 §3.2.2: whitespace goes, members are sorted, numbers take their ECMAScript form and strings
    /// escape only what they must.
    #[test]
    fn the_canonical_form_is_rfc_8785s_own_sample() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        assert_eq!(
            canonical(input),
            "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\
             \"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
        );
    }

    /// RFC 8785 §3.2.3: members are sorted by their names' UTF-16 code units, so the emoji (a surrogate pair)
    /// sorts before U+FB33.
    #[test]
    fn members_sort_by_utf16_code_units_as_in_rfc_8785() {
        let input = r#"{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis"}"#;
        let order: Vec<String> = serde_json::from_str::<serde_json::Value>(&canonical(input))
            .unwrap()
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            order,
            [
                "Carriage Return",
                "One",
                "Control",
                "Latin Small Letter O With Diaeresis",
                "Euro Sign",
                "Emoji: Grinning Face",
                "Hebrew Letter Dalet With Dagesh"
            ]
        );
    }

    /// RFC 8785 Appendix B: IEEE 754 values and the text each must serialize to.
    #[test]
    fn numbers_serialize_as_rfc_8785_appendix_b_says() {
        let samples: [(u64, &str); 10] = [
            (0x0000_0000_0000_0000, "0"),
            (0x8000_0000_0000_0000, "0"),
            (0x0000_0000_0000_0001, "5e-324"),
            (0x7fef_ffff_ffff_ffff, "1.7976931348623157e+308"),
            (0x4340_0000_0000_0000, "9007199254740992"),
            (0x4430_0000_0000_0000, "295147905179352830000"),
            (0x44b5_2d02_c7e1_4af5, "9.999999999999997e+22"),
            (0x44b5_2d02_c7e1_4af6, "1e+23"),
            (0x3eb0_c6f7_a0b5_ed8d, "0.000001"),
            (0x3eb0_c6f7_a0b5_ed8c, "9.999999999999997e-7"),
        ];
        for (bits, expected) in samples {
            let value = serde_json::Value::from(f64::from_bits(bits));
            assert_eq!(
                serde_json_canonicalizer::to_string(&value).unwrap(),
                expected,
                "{bits:#x}"
            );
        }
    }

    #[test]
    fn formatting_and_member_order_do_not_count_and_everything_else_does() {
        let pinned = Digest::of_item(r#"{"name":"add","description":"Adds","inputSchema":{"type":"object"}}"#);
        let reformatted = r#"{ "inputSchema" : { "type" : "object" },
            "description": "Adds", "name": "\u0061dd" }"#;
        assert_eq!(Digest::of_item(reformatted), pinned);
        for changed in [
            r#"{"name":"add","description":"Adds.","inputSchema":{"type":"object"}}"#,
            r#"{"name":"add","description":"Adds","inputSchema":{"type":"object","properties":{}}}"#,
            r#"{"name":"add","description":"Adds","inputSchema":{"type":"object"},"_meta":{}}"#,
            r#"{"name":"add","description":"Adds","inputSchema":{"type":"object"},"x-unknown":1}"#,
        ] {
            assert_ne!(Digest::of_item(changed), pinned, "{changed}");
        }
        // No canonical form (a number past f64): hashed as written, the same way every time.
        let huge = r#"{"name":"big","default":1e400}"#;
        assert_eq!(Digest::of_item(huge), Digest::of_item(huge));
    }

    #[test]
    fn digests_parse_only_as_64_lowercase_hex_digits() {
        let digest = Digest::of_item("{}");
        assert_eq!(digest.to_string().parse::<Digest>(), Ok(digest));
        // The SHA-256 of `{}`, as `sha256sum` gives it.
        assert_eq!(
            digest.to_string(),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        for bad in [
            "",
            "abc",
            &digest.to_string().to_uppercase(),
            &format!("{digest}0"),
            &"g".repeat(64),
        ] {
            let error = bad.parse::<Digest>().unwrap_err();
            assert!(error.to_string().contains("64 lowercase hex digits"), "{error}");
        }
    }
}
