//! JSON-RPC messages kept as the text a peer sent: only the top-level members are looked at, values
//! stay raw, so a 10 MB result is relayed without building (and holding) a tree of it.

use bytes::Bytes;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

/// One JSON-RPC message as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage(Bytes);

impl RawMessage {
    /// Wraps message text (checked lazily: see [`RawMessage::object`]).
    pub fn new(json: impl Into<Bytes>) -> Self {
        Self(json.into())
    }

    /// The message text.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// Takes the text.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The top-level members, values unparsed; an error when the text is not a JSON object.
    pub fn object(&self) -> Result<RawObject<'_>, serde_json::Error> {
        serde_json::from_slice(&self.0)
    }

    /// The whole message as a tree (for small messages mcplex must change deeply).
    pub fn value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(&self.0)
    }
}

/// A JSON object's members in order, each value as raw JSON text borrowed from the input.
#[derive(Debug, Default)]
pub struct RawObject<'a> {
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> RawObject<'a> {
    /// The raw value of a member.
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// True when the object has the member.
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// A member that is a JSON string, unescaped.
    pub fn str(&self, key: &str) -> Option<Cow<'a, str>> {
        let raw = self.get(key)?;
        serde_json::from_str::<Cow<'a, str>>(raw.get()).ok()
    }

    /// A member parsed as a tree (for small members such as `id` or `error`).
    pub fn value(&self, key: &str) -> Option<Value> {
        serde_json::from_str(self.get(key)?.get()).ok()
    }

    /// The members in order.
    pub fn members(&self) -> impl Iterator<Item = (&str, &'a RawValue)> {
        self.members.iter().map(|(k, v)| (k.as_ref(), *v))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Members<'a> {
            type Value = RawObject<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(key) = map.next_key::<Cow<'a, str>>()? {
                    let value: &'a RawValue = map.next_value()?;
                    members.push((key, value));
                }
                Ok(RawObject { members })
            }
        }
        deserializer.deserialize_map(Members(std::marker::PhantomData))
    }
}

/// Text inside a larger text: a range of it, or, for a JSON string with escapes, the unescaped copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// These bytes of the holder.
    At(Range<usize>),
    /// Unescaped text (rare: only strings written with `\` escapes need it).
    Owned(Box<str>),
}

impl Span {
    /// The text, read from `holder` when it lies there.
    pub fn resolve<'a>(&'a self, holder: &'a str) -> &'a str {
        match self {
            Self::At(range) => holder.get(range.clone()).unwrap_or_default(),
            Self::Owned(text) => text,
        }
    }

    /// Text that is either a slice of `holder` (kept as its place there) or an unescaped copy.
    pub fn locate(holder: &str, text: Cow<'_, str>) -> Self {
        match text {
            Cow::Borrowed(part) => Self::At(Self::of(holder, part)),
            Cow::Owned(text) => Self::Owned(text.into()),
        }
    }

    /// Where `part`, a slice of `holder`, lies in it (slices are compared by address, so no search).
    fn of(holder: &str, part: &str) -> Range<usize> {
        let start = (part.as_ptr() as usize).saturating_sub(holder.as_ptr() as usize);
        start..start + part.len()
    }
}

/// Where each member of one JSON object lies in the text that holds it, so a message is parsed once
/// and its members read again without parsing or copying. A key given twice keeps its first place and
/// its last value, as a parsed tree would.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members {
    members: Vec<(Span, Range<usize>)>,
}

impl Members {
    /// Indexes the object at `range` of `holder`; an error when that text is not a JSON object.
    pub fn index(holder: &str, range: Range<usize>) -> Result<Self, serde_json::Error> {
        let text = holder.get(range).unwrap_or_default();
        let object: RawObject<'_> = serde_json::from_str(text)?;
        let mut members: Vec<(Span, Range<usize>)> = Vec::with_capacity(object.members.len());
        // Objects here have a handful of members; a large one is deduplicated through a map, so a
        // request with many keys costs linear time, not quadratic.
        let mut seen: Option<HashMap<Cow<'_, str>, usize>> = (object.members.len() > 16).then(HashMap::new);
        for (key, value) in object.members {
            let value = Span::of(holder, value.get());
            let earlier = match &mut seen {
                Some(seen) => seen.get(&key).copied().or_else(|| {
                    seen.insert(key.clone(), members.len());
                    None
                }),
                None => members.iter().position(|(k, _)| k.resolve(holder) == key),
            };
            if let Some(at) = earlier {
                members[at].1 = value;
                continue;
            }
            members.push((Span::locate(holder, key), value));
        }
        Ok(Self { members })
    }

    /// The raw JSON text of a member.
    pub fn get<'a>(&self, holder: &'a str, key: &str) -> Option<&'a str> {
        holder.get(self.range_of(holder, key)?)
    }

    /// Where a member's raw JSON text lies in the holder.
    pub fn range_of(&self, holder: &str, key: &str) -> Option<Range<usize>> {
        let (_, value) = self.members.iter().find(|(k, _)| k.resolve(holder) == key)?;
        Some(value.clone())
    }

    /// True when the object has the member.
    pub fn has(&self, holder: &str, key: &str) -> bool {
        self.members.iter().any(|(k, _)| k.resolve(holder) == key)
    }

    /// The members in order: key (unescaped) and raw JSON text.
    pub fn iter<'a>(&'a self, holder: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.members
            .iter()
            .map(move |(k, v)| (k.resolve(holder), holder.get(v.clone()).unwrap_or_default()))
    }
}

/// The text of a JSON string given as raw JSON text; borrowed unless it has escapes. `None` when the
/// text is not a JSON string.
pub fn string(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        return serde_json::from_str::<String>(raw).ok().map(Cow::Owned);
    }
    Some(Cow::Borrowed(inner))
}

/// Writes a JSON object from members, each already JSON text.
pub struct ObjectWriter<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> ObjectWriter<'o> {
    /// Starts an object in `out`.
    pub fn start(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    /// Writes `"key":` and returns the buffer for the value.
    pub fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        // Serializing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *self.out, key);
        self.out.push(b':');
        self.out
    }

    /// Writes a member whose value is raw JSON text.
    pub fn raw(&mut self, key: &str, value: &str) {
        self.key(key).extend_from_slice(value.as_bytes());
    }

    /// Writes a member from a serializable value.
    pub fn value(&mut self, key: &str, value: &impl serde::Serialize) {
        let out = self.key(key);
        let _ = serde_json::to_writer(out, value);
    }

    /// Closes the object.
    pub fn finish(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_stay_raw_and_in_order() {
        let message = RawMessage::new(r#"{"jsonrpc":"2.0","id":7,"result":{"big":"x\"y","n":[1, 2]},"x-extra":true}"#);
        let object = message.object().unwrap();
        let keys: Vec<&str> = object.members().map(|(k, _)| k).collect();
        assert_eq!(keys, ["jsonrpc", "id", "result", "x-extra"]);
        assert_eq!(object.get("result").unwrap().get(), r#"{"big":"x\"y","n":[1, 2]}"#);
        assert_eq!(object.str("jsonrpc").as_deref(), Some("2.0"));
        assert_eq!(object.value("id"), Some(json!(7)));
        assert!(object.str("id").is_none());
        assert!(RawMessage::new("[1]").object().is_err());
        assert!(RawMessage::new("{\"a\":").object().is_err());
    }

    #[test]
    fn the_writer_writes_valid_json() {
        let mut out = Vec::new();
        let mut writer = ObjectWriter::start(&mut out);
        writer.raw("a", "[1,2]");
        writer.value("b\"", &json!({"c": "d"}));
        writer.finish();
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap(),
            json!({"a": [1, 2], "b\"": {"c": "d"}})
        );
    }
}
