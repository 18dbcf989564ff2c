//! JSON-RPC messages kept as the text a peer sent: only the top-level members are looked at, values
//! stay raw, so a 10 MB result is relayed without building (and holding) a tree of it.

use bytes::Bytes;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

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
