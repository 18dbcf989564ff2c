//! A deliberately misbehaving MCP upstream: it speaks just enough MCP (either era) to be listed, and
//! its `tools/call` hangs, stalls mid-stream, answers slowly or sends huge results on demand. It logs
//! every HTTP request so tests can see what mcplex sent and when. No SDK server can be made to
//! misbehave like this, which is why it exists.

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What `tools/call` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Answers at once with "done".
    Answer,
    /// Never answers (no headers).
    Hang,
    /// Sends SSE headers, then nothing.
    HangAfterHeaders,
    /// Sends SSE headers and one progress notification, then nothing.
    HangMidStream,
    /// Answers "done" after this many milliseconds.
    Slow(u64),
    /// Answers with a text block of this many bytes.
    Big(usize),
}

/// Which era the rogue speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RogueEra {
    /// 2026-07-28 only.
    Modern,
    /// Session era only (holds a GET stream open).
    Legacy,
}

/// A running rogue upstream.
pub struct Rogue {
    pub addr: SocketAddr,
    call: Arc<Mutex<Call>>,
    log: Arc<Mutex<Vec<(String, Instant)>>>,
    stop: CancellationToken,
}

impl Rogue {
    pub async fn start(era: RogueEra, call: Call) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let call = Arc::new(Mutex::new(call));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let state = (call.clone(), log.clone(), stop.clone());
        tokio::spawn(mcplex::serve::serve(
            listener,
            None,
            move |request| handle(era, state.clone(), request),
            mcplex::serve::ServeLimits::default(),
            stop.clone(),
            Duration::from_millis(100),
        ));
        Self { addr, call, log, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub fn set_call(&self, call: Call) {
        *self.call.lock().unwrap() = call;
    }

    /// Every request so far: `POST <method>`, `GET`, `DELETE`, or `answered tools/call`, with when.
    pub fn log(&self) -> Vec<(String, Instant)> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self, entry: &str) -> usize {
        self.log().iter().filter(|(e, _)| e == entry).count()
    }

    pub fn first(&self, entry: &str) -> Option<Instant> {
        self.log().into_iter().find(|(e, _)| e == entry).map(|(_, at)| at)
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

type State = (Arc<Mutex<Call>>, Arc<Mutex<Vec<(String, Instant)>>>, CancellationToken);

async fn handle(era: RogueEra, (call, log, stop): State, request: Request<Incoming>) -> Response<Body> {
    let record = |entry: String| log.lock().unwrap().push((entry, Instant::now()));
    match *request.method() {
        http::Method::DELETE => {
            record("DELETE".into());
            return status(StatusCode::OK);
        }
        http::Method::GET => {
            record("GET".into());
            return match era {
                RogueEra::Modern => status(StatusCode::METHOD_NOT_ALLOWED),
                // A session stream that stays open (and quiet) until the server stops.
                RogueEra::Legacy => sse_until(stop, Vec::new()),
            };
        }
        _ => {}
    }
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let message: Value = serde_json::from_slice(&body).unwrap_or_default();
    let method = message["method"].as_str().unwrap_or("").to_owned();
    record(format!("POST {method}"));
    let id = message["id"].clone();
    let complete = |mut result: Value| {
        if era == RogueEra::Modern {
            result["resultType"] = json!("complete");
        }
        json_response(json!({"jsonrpc": "2.0", "id": id, "result": result}))
    };
    match (method.as_str(), era) {
        ("server/discover", RogueEra::Modern) => complete(json!({
            "supportedVersions": ["2026-07-28"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "rogue", "version": "1"},
        })),
        ("server/discover", RogueEra::Legacy) => status(StatusCode::BAD_REQUEST),
        ("initialize", RogueEra::Legacy) => {
            let mut response = complete(json!({
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "rogue", "version": "1"},
            }));
            response
                .headers_mut()
                .insert("mcp-session-id", http::HeaderValue::from_static("rogue-session"));
            response
        }
        ("tools/list", _) => complete(json!({"tools": [{"name": "work", "inputSchema": {"type": "object"}}]})),
        ("tools/call", _) => {
            let behaviour = *call.lock().unwrap();
            match behaviour {
                Call::Answer => complete(text_result("done")),
                Call::Hang => {
                    stop.cancelled().await;
                    status(StatusCode::SERVICE_UNAVAILABLE)
                }
                Call::HangAfterHeaders => sse_until(stop, Vec::new()),
                Call::HangMidStream => {
                    let token = message["params"]["_meta"]["progressToken"].clone();
                    let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": token, "progress": 1}});
                    sse_until(stop, vec![progress])
                }
                Call::Slow(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    record("answered tools/call".into());
                    complete(text_result("done"))
                }
                Call::Big(bytes) => complete(text_result(&"x".repeat(bytes))),
            }
        }
        (name, _) if name.starts_with("notifications/") || message.get("method").is_none() => {
            status(StatusCode::ACCEPTED)
        }
        _ => json_response(json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "not here"}})),
    }
}

fn text_result(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}]})
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()).boxed_unsync());
    *response.status_mut() = code;
    response
}

fn json_response(message: Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(message.to_string())).boxed_unsync());
    response
        .headers_mut()
        .insert("content-type", http::HeaderValue::from_static("application/json"));
    response
}

/// An SSE response that sends `first` and then stays open, silent, until `stop`.
fn sse_until(stop: CancellationToken, first: Vec<Value>) -> Response<Body> {
    let events = futures_util::stream::iter(
        first
            .into_iter()
            .map(|m| Ok::<_, Infallible>(Frame::data(Bytes::from(format!("event: message\ndata: {m}\n\n"))))),
    );
    let silence = futures_util::stream::once(async move {
        stop.cancelled().await;
        Ok::<_, Infallible>(Frame::data(Bytes::new()))
    });
    let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(events.chain(silence))));
    response
        .headers_mut()
        .insert("content-type", http::HeaderValue::from_static("text/event-stream"));
    response
}
