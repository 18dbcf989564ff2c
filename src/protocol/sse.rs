//! Server-Sent Events: an incremental decoder for upstream streams and the encoder for downstream ones.

use bytes::Bytes;

/// Largest event the decoder buffers by default before giving up on a stream.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Why an SSE stream could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SseError {
    /// One event grew past the decoder's limit.
    #[error("an SSE event is larger than the decoder's limit")]
    EventTooLarge,
    /// A line was not UTF-8.
    #[error("an SSE line is not valid UTF-8")]
    NotUtf8,
}

/// Splits a byte stream into the `data` payloads of complete events.
#[derive(Debug)]
pub struct SseDecoder {
    line: Vec<u8>,
    data: String,
    has_data: bool,
    limit: usize,
    /// The `id` of the event being read, until its blank line.
    pending_id: Option<Box<str>>,
    /// The id of the last event completed (with or without data), for resuming with `Last-Event-ID`.
    last_event_id: Option<Box<str>>,
    /// The reconnection time the server asked for with `retry`, in milliseconds.
    retry_ms: Option<u32>,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::with_limit(MAX_EVENT_BYTES)
    }
}

impl SseDecoder {
    /// A decoder that refuses events larger than `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            line: Vec::new(),
            data: String::new(),
            has_data: false,
            limit,
            pending_id: None,
            last_event_id: None,
            retry_ms: None,
        }
    }

    /// The id of the last complete event that gave one: where a stream closed by its server resumes.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// How long the server asked a client to wait before reconnecting, when it said.
    pub fn retry_ms(&self) -> Option<u32> {
        self.retry_ms
    }

    /// Forgets a partly read event (its stream broke), keeping the last id and the retry time.
    pub fn discard_partial(&mut self) {
        self.line.clear();
        self.data.clear();
        self.has_data = false;
        self.pending_id = None;
    }

    /// Feeds one chunk and appends every event completed by it to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<String>) -> Result<(), SseError> {
        while !chunk.is_empty() {
            let (part, complete) = match chunk.iter().position(|&b| b == b'\n') {
                Some(end) => (&chunk[..end], true),
                None => (chunk, false),
            };
            if self.line.len() + part.len() + self.data.len() > self.limit {
                return Err(SseError::EventTooLarge);
            }
            self.line.extend_from_slice(part);
            chunk = &chunk[part.len() + usize::from(complete)..];
            if !complete {
                break;
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            let line = std::mem::take(&mut self.line);
            if let Some(spare) = self.take_line(line, out)? {
                // Keep a small buffer's allocation for the next line.
                self.line = spare;
                self.line.clear();
            }
        }
        Ok(())
    }

    /// Takes one complete line; gives the buffer back when it is small enough to reuse.
    fn take_line(&mut self, mut line: Vec<u8>, out: &mut Vec<String>) -> Result<Option<Vec<u8>>, SseError> {
        if line.is_empty() {
            if let Some(id) = self.pending_id.take() {
                self.last_event_id = Some(id);
            }
            if self.has_data {
                out.push(std::mem::take(&mut self.data));
                self.has_data = false;
            }
            return Ok(Some(line));
        }
        let colon = line.iter().position(|&b| b == b':');
        let field = &line[..colon.unwrap_or(line.len())];
        let mut start = colon.map_or(line.len(), |c| c + 1);
        if line.get(start) == Some(&b' ') {
            start += 1;
        }
        if field != b"data" {
            self.take_field(field, &line[start..]);
            return Ok((line.capacity() <= 4096).then_some(line));
        }
        if !self.has_data {
            // The usual case, one data line an event: the line's buffer becomes the event, no copy.
            line.drain(..start);
            self.data = String::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
            self.has_data = true;
            return Ok(None);
        }
        let value = std::str::from_utf8(&line[start..]).map_err(|_| SseError::NotUtf8)?;
        self.data.push('\n');
        self.data.push_str(value);
        Ok((line.capacity() <= 4096).then_some(line))
    }
}

impl SseDecoder {
    /// Reads the fields other than `data` that matter to a client: `id` (an id holding NUL is ignored,
    /// as the SSE standard says) and `retry` (digits only).
    fn take_field(&mut self, field: &[u8], value: &[u8]) {
        match field {
            b"id" if !value.contains(&0) => {
                self.pending_id = std::str::from_utf8(value).ok().map(Box::from);
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry_ms = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
            _ => {}
        }
    }
}

/// What precedes a JSON-RPC message in an SSE `message` event. JSON text holds no raw newline (JSON
/// escapes them in strings and serde writes none between tokens), so one data line carries it.
pub const EVENT_START: &[u8] = b"event: message\ndata: ";
/// What ends an SSE event.
pub const EVENT_END: &[u8] = b"\n\n";

/// Encodes one JSON-RPC message as an SSE `message` event.
pub fn encode_event(json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + EVENT_START.len() + EVENT_END.len());
    out.extend_from_slice(EVENT_START);
    out.extend_from_slice(json);
    out.extend_from_slice(EVENT_END);
    Bytes::from(out)
}

/// A comment line that keeps idle connections open through proxies.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Vec<String> {
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn joins_data_lines_across_chunks_and_skips_comments() {
        let events = decode(&[
            b": ping\n\nevent: mess",
            b"age\r\nid: 7\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n",
            b"data: x\n\n",
        ]);
        assert_eq!(events, vec!["{\"a\":\n1}".to_string(), "x".to_string()]);
    }

    #[test]
    fn an_event_without_data_is_not_emitted_and_partial_events_wait() {
        assert!(decode(&[b"id: 1\n\n", b"data: half"]).is_empty());
    }

    #[test]
    fn the_last_event_id_and_retry_are_kept_for_resuming() {
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        // A priming event (id, empty data, retry), then an event whose id is not yet complete.
        decoder.feed(b"id: s1::1\nretry: 5000\ndata: \n\n", &mut out).unwrap();
        assert_eq!(
            (decoder.last_event_id(), decoder.retry_ms()),
            (Some("s1::1"), Some(5000))
        );
        decoder.feed(b"id: s1::2\ndata: {}", &mut out).unwrap();
        assert_eq!(
            decoder.last_event_id(),
            Some("s1::1"),
            "an event counts once it is complete"
        );
        decoder.feed(b"\n\nid: bad\0id\nretry: 1x\n\n", &mut out).unwrap();
        assert_eq!(
            (decoder.last_event_id(), decoder.retry_ms()),
            (Some("s1::2"), Some(5000))
        );
        assert_eq!(out, ["", "{}"]);
        decoder.feed(b"id: s1::3\ndata: {\"half", &mut out).unwrap();
        decoder.discard_partial();
        decoder.feed(b"data: {}\n\n", &mut out).unwrap();
        assert_eq!((out.len(), decoder.last_event_id()), (3, Some("s1::2")));
    }

    #[test]
    fn rejects_oversized_events() {
        let mut decoder = SseDecoder::with_limit(10);
        assert_eq!(
            decoder.feed(b"data: 0123456789", &mut Vec::new()),
            Err(SseError::EventTooLarge)
        );
        let mut decoder = SseDecoder::with_limit(12);
        let mut out = Vec::new();
        assert_eq!(decoder.feed(b"data: 12345\n\ndata: 6\n\n", &mut out), Ok(()));
        assert_eq!(out, ["12345", "6"]);
    }

    #[test]
    fn encodes_one_event() {
        assert_eq!(&encode_event(b"{}")[..], b"event: message\ndata: {}\n\n");
    }
}
