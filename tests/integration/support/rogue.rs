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
    /// Streams progress under a token the call did not give, progress with no token, progress under the
    /// call's own token, then "done".
    StrayProgress,
    /// Asks the client for elicitation on the call's stream, cancels that request (and one it never
    /// sent), then answers "done".
    CancelOwnRequest,
    /// Asks the client for elicitation on the session's GET stream and cancels it there, then answers
    /// "done" after 300 ms.
    CancelOnGetStream,
    /// Waits until a second call is in flight, streams progress under that call's token (and under one no
    /// call gave), then answers "done" once the other call has sent its own.
    CrossProgress,
    /// Answers "done" after this many milliseconds.
    Slow(u64),
    /// Closes the session's GET stream, waits (up to 3 s) for the client to open it again, asks for sampling
    /// there and answers the call with plain JSON once answered, as [`Call::SampleOnGetStreamThenJson`].
    SampleOnReopenedGetStream,
    /// Answers "done" at once, then after this many milliseconds asks the client for sampling on the
    /// session's GET stream, tied to no call, and records the answer it gets (or that none came in 3 s).
    AskOnGetStreamAfter(u64),
    /// Answers with a text block of this many bytes.
    Big(usize),
    /// Asks the client for sampling on the session's GET stream, tied to no call, as TypeScript SDK
    /// servers do (and like them drops the request when no GET stream is open), then answers with the
    /// sampled text.
    SampleOnGetStream,
    /// The same, but answers the call with plain JSON once the client has answered (at most 4 s), as a
    /// server in JSON-response mode does: nothing of the call reaches mcplex before that.
    SampleOnGetStreamThenJson,
}

/// Which era the rogue speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RogueEra {
    /// 2026-07-28 only.
    Modern,
    /// Session era only (holds a GET stream open).
    Legacy,
    /// Both, routed like the official dual-era reference server: a POST that carries
    /// `MCP-Protocol-Version` or `params._meta` goes to the 2026-07-28 handler, anything else to sessions.
    Dual,
}

/// A running rogue upstream.
pub struct Rogue {
    pub addr: SocketAddr,
    call: Arc<Mutex<Call>>,
    log: Arc<Mutex<Vec<(String, Instant)>>>,
    stop: CancellationToken,
}

/// The GET stream of the rogue's session (if one is open) and the answers it waits for.
#[derive(Default)]
struct Sessions {
    stream: Option<tokio::sync::mpsc::UnboundedSender<Value>>,
    waiting: std::collections::HashMap<String, tokio::sync::oneshot::Sender<Value>>,
    /// The progress tokens of the calls in flight ([`Call::CrossProgress`]), and how many have reported.
    tokens: Vec<Value>,
    reported: usize,
}

impl Rogue {
    pub async fn start(era: RogueEra, call: Call) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let call = Arc::new(Mutex::new(call));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let state: State = (
            call.clone(),
            log.clone(),
            stop.clone(),
            Arc::new(Mutex::new(Sessions::default())),
        );
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
        format!("http://{}{}", self.addr, crate::support::common::own_path())
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

type State = (
    Arc<Mutex<Call>>,
    Arc<Mutex<Vec<(String, Instant)>>>,
    CancellationToken,
    Arc<Mutex<Sessions>>,
);

async fn handle(era: RogueEra, (call, log, stop, sessions): State, request: Request<Incoming>) -> Response<Body> {
    if !crate::support::common::is_own(&request) {
        return status(StatusCode::NOT_FOUND);
    }
    let record = |entry: String| log.lock().unwrap().push((entry, Instant::now()));
    let version_header = request.headers().contains_key("mcp-protocol-version");
    let session_wire = if era == RogueEra::Dual { RogueEra::Legacy } else { era };
    match *request.method() {
        http::Method::DELETE => {
            record("DELETE".into());
            return status(StatusCode::OK);
        }
        http::Method::GET => {
            record("GET".into());
            return match session_wire {
                RogueEra::Modern => status(StatusCode::METHOD_NOT_ALLOWED),
                // The session stream stays open until the server stops and carries requests tied to no call.
                RogueEra::Legacy | RogueEra::Dual => {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    sessions.lock().unwrap().stream = Some(tx);
                    session_stream(stop, rx)
                }
            };
        }
        _ => {}
    }
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let message: Value = serde_json::from_slice(&body).unwrap_or_default();
    let method = message["method"].as_str().unwrap_or("").to_owned();
    record(format!("POST {method}"));
    if method.is_empty() {
        // A client's answer to a request the rogue sent.
        let waiter = message["id"]
            .as_str()
            .and_then(|id| sessions.lock().unwrap().waiting.remove(id));
        if let Some(waiter) = waiter {
            let _ = waiter.send(message.clone());
        }
        return status(StatusCode::ACCEPTED);
    }
    let id = message["id"].clone();
    let era = match era {
        RogueEra::Dual if version_header || message["params"].get("_meta").is_some() => RogueEra::Modern,
        RogueEra::Dual => RogueEra::Legacy,
        era => era,
    };
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
                Call::StrayProgress => {
                    let token = message["params"]["_meta"]["progressToken"].clone();
                    let progress =
                        |params: Value| json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": params});
                    let mut result = text_result("done");
                    if era == RogueEra::Modern {
                        result["resultType"] = json!("complete");
                    }
                    let (events, stream) = tokio::sync::mpsc::unbounded_channel();
                    for message in [
                        progress(json!({"progressToken": "someone-else", "progress": 1})),
                        progress(json!({"progress": 2})),
                        progress(json!({"progressToken": token, "progress": 3})),
                        json!({"jsonrpc": "2.0", "id": id, "result": result}),
                    ] {
                        let _ = events.send(message);
                    }
                    // The sender is dropped here, so the stream ends after the answer.
                    session_stream(stop, stream)
                }
                Call::CancelOwnRequest => {
                    let cancel = |request_id: &str| json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id, "reason": "timed out"}});
                    let (events, stream) = tokio::sync::mpsc::unbounded_channel();
                    for message in [
                        json!({"jsonrpc": "2.0", "id": "rogue-ask-1", "method": "elicitation/create", "params": {"message": "Your name?", "requestedSchema": {"type": "object", "properties": {}}}}),
                        cancel("rogue-ask-1"),
                        cancel("never-sent"),
                        json!({"jsonrpc": "2.0", "id": id, "result": text_result("done")}),
                    ] {
                        let _ = events.send(message);
                    }
                    session_stream(stop, stream)
                }
                Call::CancelOnGetStream => {
                    let stream = sessions.lock().unwrap().stream.clone();
                    let sent = stream.is_some_and(|stream| {
                        let ask = json!({"jsonrpc": "2.0", "id": "rogue-ask-2", "method": "elicitation/create", "params": {"message": "Your name?", "requestedSchema": {"type": "object", "properties": {}}}});
                        let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "rogue-ask-2", "reason": "timed out"}});
                        stream.send(ask).is_ok() && stream.send(cancel).is_ok()
                    });
                    record(format!("elicitation and cancellation sent on the GET stream: {sent}"));
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    complete(text_result("done"))
                }
                Call::CrossProgress => {
                    let token = message["params"]["_meta"]["progressToken"].clone();
                    sessions.lock().unwrap().tokens.push(token.clone());
                    let (events, stream) = tokio::sync::mpsc::unbounded_channel();
                    let sessions = sessions.clone();
                    tokio::spawn(async move {
                        let started = Instant::now();
                        wait_until(&sessions, started, |s| s.tokens.len() >= 2).await;
                        let other = sessions.lock().unwrap().tokens.iter().find(|t| **t != token).cloned();
                        for token in [other.unwrap_or_default(), json!("no-call")] {
                            let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": token, "progress": 1}});
                            let _ = events.send(progress);
                        }
                        sessions.lock().unwrap().reported += 1;
                        wait_until(&sessions, started, |s| s.reported >= 2).await;
                        // Both calls are still in flight when the other's progress is sent; give mcplex a
                        // moment to relay it before this call (and its token) ends.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let _ = events.send(json!({"jsonrpc": "2.0", "id": id, "result": text_result("done")}));
                    });
                    session_stream(stop, stream)
                }
                Call::Slow(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    record("answered tools/call".into());
                    complete(text_result("done"))
                }
                Call::Big(bytes) => complete(text_result(&"x".repeat(bytes))),
                Call::AskOnGetStreamAfter(ms) => {
                    let (sessions, log) = (sessions.clone(), log.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        let record = |entry: String| log.lock().unwrap().push((entry, Instant::now()));
                        let answer = sample_on_get_stream(&sessions, &record);
                        let answer = tokio::time::timeout(Duration::from_secs(3), answer)
                            .await
                            .ok()
                            .and_then(Result::ok);
                        record(format!("later answer: {}", sampled_text(answer.as_ref())));
                    });
                    complete(text_result("done"))
                }
                Call::SampleOnGetStream => {
                    // Like a TypeScript SDK server: the call's SSE headers go out first, the request goes on
                    // the GET stream (and is lost when none is open), and the result follows the answer.
                    let (events, stream) = tokio::sync::mpsc::unbounded_channel();
                    let answer_rx = sample_on_get_stream(&sessions, &record);
                    tokio::spawn(async move {
                        let answer = answer_rx.await.ok();
                        let mut result = text_result(&format!("sampled: {}", sampled_text(answer.as_ref())));
                        if era == RogueEra::Modern {
                            result["resultType"] = json!("complete");
                        }
                        let _ = events.send(json!({"jsonrpc": "2.0", "id": id, "result": result}));
                    });
                    session_stream(stop, stream)
                }
                Call::SampleOnReopenedGetStream => {
                    let closed = sessions.lock().unwrap().stream.take().is_some();
                    record(format!("closed the GET stream: {closed}"));
                    wait_until(&sessions, Instant::now(), |s| s.stream.is_some()).await;
                    sample_then_answer_in_json(&sessions, &record, id).await
                }
                Call::SampleOnGetStreamThenJson => sample_then_answer_in_json(&sessions, &record, id).await,
            }
        }
        (name, _) if name.starts_with("notifications/") || message.get("method").is_none() => {
            status(StatusCode::ACCEPTED)
        }
        _ => json_response(json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "not here"}})),
    }
}

/// Polls the rogue's session state until `done` holds, for at most the tests' patience from `started`
/// (then the rogue goes on, and the test sees what it does without it).
async fn wait_until(sessions: &Mutex<Sessions>, started: Instant, done: impl Fn(&Sessions) -> bool) {
    while !done(&sessions.lock().unwrap()) && started.elapsed() < crate::support::wait::PATIENCE {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends a sampling request on the session's GET stream (if one is open) and returns where its answer
/// will arrive.
fn sample_on_get_stream(sessions: &Mutex<Sessions>, record: &impl Fn(String)) -> tokio::sync::oneshot::Receiver<Value> {
    let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
    let sent = {
        let mut sessions = sessions.lock().unwrap();
        sessions.waiting.insert("rogue-sample-1".into(), answer_tx);
        let request = json!({"jsonrpc": "2.0", "id": "rogue-sample-1", "method": "sampling/createMessage", "params": {"messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}], "maxTokens": 10}});
        sessions.stream.as_ref().is_some_and(|s| s.send(request).is_ok())
    };
    record(format!("sampling sent on the GET stream: {sent}"));
    answer_rx
}

/// Asks for sampling on the session's GET stream and answers the call `id` with plain JSON once the client
/// has answered (at most 4 s): nothing of the call goes out before, as from a server in JSON-response mode.
async fn sample_then_answer_in_json(sessions: &Mutex<Sessions>, record: &impl Fn(String), id: Value) -> Response<Body> {
    let answer_rx = sample_on_get_stream(sessions, record);
    let answer = tokio::time::timeout(Duration::from_secs(4), answer_rx)
        .await
        .ok()
        .and_then(Result::ok);
    let text = format!("sampled: {}", sampled_text(answer.as_ref()));
    json_response(json!({"jsonrpc": "2.0", "id": id, "result": text_result(&text)}))
}

/// The text of a client's answer to a sampling request.
fn sampled_text(answer: Option<&Value>) -> &str {
    answer
        .and_then(|a| a["result"]["content"]["text"].as_str())
        .unwrap_or("no answer")
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

/// An SSE response that carries what `messages` receives until `stop`.
fn session_stream(stop: CancellationToken, messages: tokio::sync::mpsc::UnboundedReceiver<Value>) -> Response<Body> {
    let events = futures_util::stream::unfold((messages, stop), |(mut messages, stop)| async move {
        let message = tokio::select! {
            message = messages.recv() => message?,
            _ = stop.cancelled() => return None,
        };
        let frame = Frame::data(Bytes::from(format!("event: message\ndata: {message}\n\n")));
        Some((Ok::<_, Infallible>(frame), (messages, stop)))
    });
    let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(events)));
    response
        .headers_mut()
        .insert("content-type", http::HeaderValue::from_static("text/event-stream"));
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
