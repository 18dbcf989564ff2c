//! The audit trail: one JSON line per tool call, prompt get and resource read, on a stream of its own
//! (stdout, or a file) so a cluster log pipeline can pick it up apart from the logs (stderr). A line says
//! who called what on which target, what was decided, how it ended and how long it took; never a token,
//! and never the arguments unless the operator asks for their SHA-256.
//!
//! Lines are written by a thread of their own through a bounded queue, in batches (at most 100 ms late):
//! the single-threaded runtime never waits on a slow disk or pipe, and a call costs no write of its own.
//! When the queue is full a line is dropped and counted.

use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::SystemTime;

/// Lines waiting for the writer thread before new ones are dropped.
const QUEUE: usize = 4096;

/// Where audit lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditSink {
    /// Standard output (the logs are on standard error).
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

/// What the audit trail records; `None` sink means off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditOptions {
    /// Where lines go; `None` records nothing.
    pub sink: Option<AuditSink>,
    /// Add the SHA-256 of each call's arguments (off: arguments leave no trace at all).
    pub hash_arguments: bool,
}

/// Why the audit trail could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the audit log {path}: {source}")]
pub struct AuditError {
    /// The file.
    pub path: PathBuf,
    /// The I/O error.
    pub source: std::io::Error,
}

/// Who made a call, as far as mcplex knows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditCaller {
    /// The validated token's subject, when inbound identity is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Who acts for the subject (`act.sub` of a delegated token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The session-era client's session id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The client's name from its `clientInfo`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// One audited call, filled in as it is routed and completed when it ends.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// When the call ended (RFC 3339, UTC).
    pub time: String,
    /// Always `mcplex.audit`, to tell these lines from others in a shared pipeline.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The caller.
    pub caller: AuditCaller,
    /// The pod's profile, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// `tools/call`, `prompts/get`, `resources/read`.
    pub method: &'static str,
    /// The tool or prompt as exposed, or the resource URI.
    pub name: String,
    /// The tool or prompt as the target knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_name: Option<String>,
    /// The target.
    pub target: String,
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// What made the decision: the Cedar rule's `@id` or id, or that no policy is configured.
    pub rule: String,
    /// How the call ended (the metrics' outcome).
    pub outcome: &'static str,
    /// Milliseconds from routing to the answer.
    pub latency_ms: f64,
    /// The W3C trace id, when the call carried a trace context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// SHA-256 (hex) of the arguments' JSON, when the operator asked for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments_sha256: Option<String>,
}

/// A change of a pinned definition a target lists: one line when a drift appears and one when it ends,
/// however many lists show it in between.
#[derive(Debug, Clone, Serialize)]
pub struct PinAuditEntry {
    /// When the list that showed the change was fetched (RFC 3339, UTC).
    pub time: String,
    /// Always `mcplex.audit`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Always `pin`, to tell these lines from call lines.
    pub event: &'static str,
    /// The pod's profile, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The target.
    pub target: String,
    /// `tool` or `prompt`.
    pub item: &'static str,
    /// The target's own name for it.
    pub upstream_name: String,
    /// The name clients see.
    pub name: String,
    /// `held` (left out, `enforce`), `flagged` (served, `warn`), `restored` (matches its pin again) or
    /// `removed` (the target no longer lists it).
    pub action: &'static str,
    /// Where the pins come from: `config` or `first-sight`.
    pub pins: &'static str,
    /// The approved digest, absent when the item is not pinned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_sha256: Option<String>,
    /// The digest of the definition that drifted.
    pub seen_sha256: String,
}

/// The audit trail of one sidecar.
pub struct AuditLog {
    queue: Option<SyncSender<Vec<u8>>>,
    hash_arguments: bool,
    dropped: AtomicU64,
}

impl AuditLog {
    /// Opens the sink and starts its writer thread (nothing when the sink is `None`).
    pub fn open(options: &AuditOptions) -> Result<Self, AuditError> {
        let writer: Option<Box<dyn Write + Send>> = match &options.sink {
            None => None,
            Some(AuditSink::Stdout) => Some(Box::new(std::io::stdout())),
            Some(AuditSink::File(path)) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| AuditError {
                        path: path.clone(),
                        source,
                    })?;
                Some(Box::new(file))
            }
        };
        let queue = writer.map(|writer| {
            let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
            std::thread::Builder::new()
                .name("mcplex-audit".into())
                .spawn(move || write_lines(rx, writer))
                .map(|_| tx)
        });
        let queue = match queue {
            Some(Ok(tx)) => Some(tx),
            Some(Err(source)) => {
                return Err(AuditError {
                    path: "(writer thread)".into(),
                    source,
                });
            }
            None => None,
        };
        Ok(Self {
            queue,
            hash_arguments: options.hash_arguments,
            dropped: AtomicU64::new(0),
        })
    }

    /// True when calls are recorded.
    pub fn is_on(&self) -> bool {
        self.queue.is_some()
    }

    /// The SHA-256 of `arguments`' JSON text, when the operator asked for argument hashes.
    pub fn arguments_hash(&self, arguments: Option<&serde_json::Value>) -> Option<String> {
        if !self.hash_arguments {
            return None;
        }
        let text = serde_json::to_vec(arguments.unwrap_or(&serde_json::Value::Null)).ok()?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &text);
        Some(hex::encode(digest))
    }

    /// Queues one call line for the writer thread; a full queue drops it (counted, see [`AuditLog::dropped`]).
    pub fn write(&self, mut entry: AuditEntry) {
        if self.queue.is_some() {
            entry.time = now();
            self.queue_line(&entry);
        }
    }

    /// Queues one pin change line, as [`AuditLog::write`] does a call's.
    pub fn write_pin(&self, mut entry: PinAuditEntry) {
        if self.queue.is_some() {
            entry.time = now();
            self.queue_line(&entry);
        }
    }

    fn queue_line(&self, entry: &impl Serialize) {
        let Some(queue) = &self.queue else { return };
        let Ok(mut line) = serde_json::to_vec(entry) else {
            return;
        };
        line.push(b'\n');
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = queue.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines dropped because the writer fell behind (or stopped).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// How long the writer gathers lines after the first one of a batch: one write and one wake-up per batch
/// instead of per call, for at most this much delay.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(100);

/// Writes queued lines in batches; it sleeps in `recv` while nothing is queued.
fn write_lines(rx: Receiver<Vec<u8>>, writer: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, writer);
    while let Ok(first) = rx.recv() {
        std::thread::sleep(BATCH_WINDOW);
        let mut ok = out.write_all(&first).is_ok();
        while let Ok(line) = rx.try_recv() {
            ok &= out.write_all(&line).is_ok();
        }
        if !(ok && out.flush().is_ok()) {
            eprintln!("mcplex: the audit log cannot be written; lines are being lost");
        }
    }
}
