//! One encoded message on its way to a client, with its share of the message budget.

use crate::budget::Hold;
use bytes::Bytes;
use serde_json::Value;

/// One encoded message of a stream, with its share of the message budget.
pub struct EncodedMessage {
    /// The message text.
    pub json: Bytes,
    /// Held until the message is written out.
    pub hold: Hold,
}

impl EncodedMessage {
    /// A message mcplex wrote (small: it holds no budget).
    pub fn of(message: &Value) -> Self {
        Self {
            json: encode(message),
            hold: Hold::none(),
        }
    }
}

/// Encodes a message mcplex wrote (serializing a `Value` cannot fail).
pub fn encode(message: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(message).unwrap_or_default())
}
