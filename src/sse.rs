//! Server-Sent Events: an incremental decoder for upstream streams and the encoder for downstream ones.

use bytes::Bytes;

/// Largest event the decoder buffers before giving up on a stream.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Why an SSE stream could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SseError {
    /// One event grew past [`MAX_EVENT_BYTES`].
    #[error("an SSE event is larger than {MAX_EVENT_BYTES} bytes")]
    EventTooLarge,
    /// A line was not UTF-8.
    #[error("an SSE line is not valid UTF-8")]
    NotUtf8,
}

/// Splits a byte stream into the `data` payloads of complete events.
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    data: String,
    has_data: bool,
}

impl SseDecoder {
    /// Feeds one chunk and appends every event completed by it to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<String>) -> Result<(), SseError> {
        for &byte in chunk {
            if byte != b'\n' {
                self.line.push(byte);
                if self.line.len() + self.data.len() > MAX_EVENT_BYTES {
                    return Err(SseError::EventTooLarge);
                }
                continue;
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            let line = std::mem::take(&mut self.line);
            self.take_line(&line, out)?;
        }
        Ok(())
    }

    fn take_line(&mut self, line: &[u8], out: &mut Vec<String>) -> Result<(), SseError> {
        if line.is_empty() {
            if self.has_data {
                out.push(std::mem::take(&mut self.data));
                self.has_data = false;
            }
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        if field == "data" {
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(value);
            self.has_data = true;
        }
        Ok(())
    }
}

/// Encodes one JSON-RPC message as an SSE `message` event.
pub fn encode_event(json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 24);
    out.extend_from_slice(b"event: message\ndata: ");
    // JSON text from serde never holds a raw newline, so one data line suffices.
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
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
    fn rejects_oversized_events() {
        let mut decoder = SseDecoder::default();
        let big = vec![b'a'; MAX_EVENT_BYTES + 1];
        assert_eq!(decoder.feed(&big, &mut Vec::new()), Err(SseError::EventTooLarge));
    }

    #[test]
    fn encodes_one_event() {
        assert_eq!(&encode_event(b"{}")[..], b"event: message\ndata: {}\n\n");
    }
}
