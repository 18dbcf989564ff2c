//! JSON-RPC messages kept as the text a peer sent: only the top-level members are looked at, values
//! stay raw, so a 10 MB result is relayed without building (and holding) a tree of it.

use bytes::Bytes;
use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, Visitor};
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

    /// The message as text; an error when it is not UTF-8 (then it is not JSON either).
    pub fn text(&self) -> Result<&str, serde_json::Error> {
        std::str::from_utf8(&self.0).map_err(serde::de::Error::custom)
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
        string(self.get(key)?.get())
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
                while let Some(Key(key)) = map.next_key::<Key<'a>>()? {
                    let value: &'a RawValue = map.next_value()?;
                    members.push((key, value));
                }
                Ok(RawObject { members })
            }
        }
        deserializer.deserialize_map(Members(std::marker::PhantomData))
    }
}

/// An object's key, borrowed from the input unless it had escapes. serde's own `Cow<str>` always copies
/// (a key allocated per member was a tenth of a relayed call's instructions).
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyText<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for KeyText<'a> {
            type Value = Key<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: serde::de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(key)))
            }

            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, key: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(key)))
            }
        }
        deserializer.deserialize_str(KeyText(std::marker::PhantomData))
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

    /// True when the text is `key`: lengths first, then bytes, with no character-boundary checks (a
    /// message's members are looked up by key a dozen times per call).
    fn is(&self, holder: &str, key: &str) -> bool {
        match self {
            Self::At(range) => range.len() == key.len() && holder.as_bytes().get(range.clone()) == Some(key.as_bytes()),
            Self::Owned(text) => &**text == key,
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
    /// Some key came more than once (the text then holds values the index does not show).
    repeats: bool,
}

impl Members {
    /// Indexes the object at `range` of `holder` and, in the same pass, the objects along `path`: its
    /// member `path[0]`, that one's member `path[1]`, and so on (`None` for a level whose member is
    /// absent or not an object). One pass reads each byte once; indexing level by level read the
    /// innermost object once per level. An error when the text at `range` is not a JSON object.
    pub fn index_path<const N: usize>(
        holder: &str,
        range: Range<usize>,
        path: [&str; N],
    ) -> Result<(Self, [Option<Self>; N]), serde_json::Error> {
        let mut nested: [Option<Self>; N] = std::array::from_fn(|_| None);
        let members = index_into(holder, range, &path, &mut nested)?;
        Ok((members, nested))
    }

    /// True when some key came more than once.
    pub fn has_repeats(&self) -> bool {
        self.repeats
    }

    /// True when the object has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The raw JSON text of a member.
    pub fn get<'a>(&self, holder: &'a str, key: &str) -> Option<&'a str> {
        holder.get(self.range_of(holder, key)?)
    }

    /// Where a member's raw JSON text lies in the holder.
    pub fn range_of(&self, holder: &str, key: &str) -> Option<Range<usize>> {
        let (_, value) = self.members.iter().find(|(k, _)| k.is(holder, key))?;
        Some(value.clone())
    }

    /// True when the object has the member.
    pub fn has(&self, holder: &str, key: &str) -> bool {
        self.members.iter().any(|(k, _)| k.is(holder, key))
    }

    /// The members in order: key (unescaped) and raw JSON text.
    pub fn iter<'a>(&'a self, holder: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.members
            .iter()
            .map(move |(k, v)| (k.resolve(holder), holder.get(v.clone()).unwrap_or_default()))
    }
}

/// The whitespace JSON allows between tokens.
const JSON_WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// [`Members::index_path`] with the levels as slices.
fn index_into(
    holder: &str,
    range: Range<usize>,
    path: &[&str],
    nested: &mut [Option<Members>],
) -> Result<Members, serde_json::Error> {
    let text = holder.get(range.clone()).unwrap_or_default();
    let start = range.start + (text.len() - text.trim_start_matches(JSON_WHITESPACE).len());
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let (members, _) = ObjectSeed {
        holder,
        start,
        path,
        nested,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(members)
}

/// Where the value of a member begins, given where its key's closing quote ends: past `:` and any
/// whitespace. `None` when the text there is not `:` (serde_json then reports the error).
fn value_start(holder: &str, after_key: usize) -> Option<usize> {
    let rest = holder.get(after_key..)?.trim_start_matches(JSON_WHITESPACE);
    let value = rest.strip_prefix(':')?.trim_start_matches(JSON_WHITESPACE);
    Some(holder.len() - value.len())
}

/// Reads one object whose `{` is at `start` of `holder` into its [`Members`] and its range there,
/// indexing the objects along `path` into `nested` on the way.
struct ObjectSeed<'h, 'p, 'n> {
    holder: &'h str,
    start: usize,
    path: &'p [&'p str],
    nested: &'n mut [Option<Members>],
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_, '_, '_> {
    type Value = (Members, Range<usize>);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_, '_, '_> {
    type Value = (Members, Range<usize>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let Self {
            holder,
            start,
            path,
            nested,
        } = self;
        let (next, deeper) = path
            .split_first()
            .map_or((None, &[][..]), |(key, rest)| (Some(*key), rest));
        let (here, below) = match nested.split_first_mut() {
            Some((here, below)) => (Some(here), below),
            None => (None, &mut [][..]),
        };
        let mut members = MemberList::default();
        // The value along the path indexed in this pass; a later value of the same key replaces it.
        let mut indexed: Option<(Range<usize>, Members)> = None;
        let mut end = start + 1;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let on_path = next.is_some_and(|next| next == key);
            // Only a key read in place tells where its value begins (an escaped key is a copy).
            let object_at = match &key {
                Cow::Borrowed(text) if on_path => value_start(holder, Span::of(holder, text).end + 1)
                    .filter(|&at| holder.as_bytes().get(at) == Some(&b'{')),
                _ => None,
            };
            let value = match object_at {
                Some(at) => {
                    let (inner, range) = map.next_value_seed(ObjectSeed {
                        holder,
                        start: at,
                        path: deeper,
                        nested: &mut *below,
                    })?;
                    indexed = Some((range.clone(), inner));
                    range
                }
                None => Span::of(holder, map.next_value::<&'de RawValue>()?.get()),
            };
            end = value.end;
            members.push(holder, key, value);
        }
        let close = holder.get(end..).map_or(end, |rest| {
            holder.len() - rest.trim_start_matches(JSON_WHITESPACE).len()
        });
        let members = members.finish();
        if let (Some(next), Some(here)) = (next, here) {
            let last = members.range_of(holder, next);
            *here = match (indexed, last) {
                (Some((range, inner)), Some(last)) if range == last => Some(inner),
                // Rare: the path's key came escaped, or again after the indexed value. Read it again.
                (_, Some(last)) if holder.get(last.clone()).is_some_and(|text| text.starts_with('{')) => {
                    below.iter_mut().for_each(|level| *level = None);
                    Some(index_into(holder, last, deeper, below).map_err(serde::de::Error::custom)?)
                }
                _ => {
                    below.iter_mut().for_each(|level| *level = None);
                    None
                }
            };
        }
        Ok((members, start..close + 1))
    }
}

/// Members as they are read: a key given twice keeps its first place and its last value, as a parsed
/// tree would. Objects here have a handful of members; past 16 they are deduplicated through a map, so
/// a request with many keys costs linear time, not quadratic.
struct MemberList<'h> {
    members: Vec<(Span, Range<usize>)>,
    seen: Option<HashMap<Cow<'h, str>, usize>>,
    repeats: bool,
}

impl Default for MemberList<'_> {
    fn default() -> Self {
        Self {
            // Room for a request's envelope or a usual `_meta`, so most objects allocate once.
            members: Vec::with_capacity(8),
            seen: None,
            repeats: false,
        }
    }
}

impl<'h> MemberList<'h> {
    const SCAN_LIMIT: usize = 16;

    fn push(&mut self, holder: &'h str, key: Cow<'_, str>, value: Range<usize>) {
        let earlier = match &mut self.seen {
            Some(seen) => seen.get(key.as_ref()).copied(),
            None => self.members.iter().position(|(k, _)| k.is(holder, &key)),
        };
        if let Some(at) = earlier {
            self.members[at].1 = value;
            self.repeats = true;
            return;
        }
        let span = Span::locate(holder, key);
        if self.seen.is_none() && self.members.len() == Self::SCAN_LIMIT {
            let seen = self
                .members
                .iter()
                .enumerate()
                .map(|(at, (k, _))| (key_of(holder, k), at));
            self.seen = Some(seen.collect());
        }
        if let Some(seen) = &mut self.seen {
            seen.insert(key_of(holder, &span), self.members.len());
        }
        self.members.push((span, value));
    }

    fn finish(self) -> Members {
        Members {
            members: self.members,
            repeats: self.repeats,
        }
    }
}

/// A key for the map of [`MemberList`]: borrowed from the holder unless it was unescaped.
fn key_of<'h>(holder: &'h str, span: &Span) -> Cow<'h, str> {
    match span {
        Span::At(range) => Cow::Borrowed(holder.get(range.clone()).unwrap_or_default()),
        Span::Owned(text) => Cow::Owned(text.to_string()),
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

/// Writes `text` as a JSON string. Keys and names rarely need escapes, and copying them as they are
/// costs a tenth of what the general serializer does.
pub fn write_string(out: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Serializing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(out, text);
    }
}

/// A text with some ranges replaced and some members inserted into its objects, everything else copied
/// as it is: how a message that needs a few changes is written without walking its members.
pub struct Splice<'t> {
    text: &'t str,
    /// Each edit: the range of `text` it replaces (empty for an insertion) and its bytes in `written`.
    edits: Vec<(Range<usize>, Range<usize>)>,
    written: Vec<u8>,
}

/// Where members are inserted into one object of a [`Splice`]: before its closing brace.
pub struct ObjectEnd {
    at: usize,
    comma: bool,
}

impl ObjectEnd {
    /// The end of the object whose text is at `range` (which ends with its `}`), empty or not.
    pub fn of(range: &Range<usize>, empty: bool) -> Self {
        Self {
            at: range.end.saturating_sub(1),
            comma: !empty,
        }
    }
}

impl<'t> Splice<'t> {
    /// Starts with `text` unchanged.
    pub fn new(text: &'t str) -> Self {
        Self {
            text,
            edits: Vec::with_capacity(8),
            written: Vec::with_capacity(128),
        }
    }

    /// Replaces `range` of the text with what `write` writes.
    pub fn replace(&mut self, range: Range<usize>, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.written.len();
        write(&mut self.written);
        self.edits.push((range, start..self.written.len()));
    }

    /// Inserts the member `key` (its value written by `write`) at the end of an object.
    pub fn insert_member(&mut self, object: &mut ObjectEnd, key: &str, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.written.len();
        if object.comma {
            self.written.push(b',');
        }
        object.comma = true;
        write_string(&mut self.written, key);
        self.written.push(b':');
        write(&mut self.written);
        self.edits.push((object.at..object.at, start..self.written.len()));
    }

    /// The edited text.
    pub fn finish(mut self) -> Vec<u8> {
        // Stable: insertions at one place keep their order.
        self.edits.sort_by_key(|(range, _)| range.start);
        let mut out = Vec::with_capacity(self.text.len() + self.written.len());
        let mut at = 0;
        for (range, written) in &self.edits {
            out.extend_from_slice(self.text.as_bytes().get(at..range.start).unwrap_or_default());
            out.extend_from_slice(self.written.get(written.clone()).unwrap_or_default());
            at = range.end.max(at);
        }
        out.extend_from_slice(self.text.as_bytes().get(at..).unwrap_or_default());
        out
    }
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
        write_string(self.out, key);
        self.out.push(b':');
        self.out
    }

    /// Writes a member whose value is a string.
    pub fn string(&mut self, key: &str, value: &str) {
        write_string(self.key(key), value);
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
