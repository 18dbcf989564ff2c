//! One stdio MCP server process: its stdin fed from a bounded queue, its stdout read as newline-delimited
//! JSON-RPC messages, its stderr written to the log line by line with the session it serves, and its end
//! (SIGTERM, then SIGKILL after a grace period). Whatever the process does, it is reaped, and the one who
//! started it learns why it ended.

use super::limits::{
    INPUT_QUEUE, MAX_MESSAGE, MAX_STDERR_LINE, STDERR_LINES_PER_SECOND, STDERR_TAIL, STOP_GRACE, WRITE_DEADLINE,
};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;

use crate::sync::lock;

/// How long an ended process's output is still read for before its end is reported.
const READ_REMAINDER: Duration = Duration::from_millis(500);

/// The server to run: a program and its arguments.
#[derive(Debug, Clone)]
pub struct ServerCommand {
    /// The program (looked up in `PATH` when it has no slash).
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
}

/// A server process could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot start `{program}`: {source}")]
pub struct SpawnError {
    program: String,
    source: std::io::Error,
}

/// Why a server process ended (the last thing its session hears of it).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Ended {
    /// It exited on its own.
    #[error("the server process exited ({status}){}", last_lines(.stderr))]
    Exited {
        /// Its exit status, as the system words it.
        status: String,
        /// Its last lines on stderr.
        stderr: Vec<String>,
    },
    /// It wrote a line on stdout that is not a JSON-RPC message.
    #[error("the server process wrote something that is not a JSON-RPC message on stdout: `{excerpt}`")]
    Garbage {
        /// The start of what it wrote.
        excerpt: String,
    },
    /// It wrote a line on stdout longer than mcplex takes.
    #[error("the server process wrote a message longer than {limit} bytes on stdout")]
    TooLong {
        /// The limit.
        limit: usize,
    },
    /// It stopped reading its stdin.
    #[error("the server process stopped reading its input for {after:?}")]
    NotReading {
        /// How long a write waited.
        after: Duration,
    },
    /// mcplex ended it (the session ended, was idle too long, or mcplex is stopping).
    #[error("the server process was stopped ({why})")]
    Stopped {
        /// Why.
        why: &'static str,
    },
}

fn last_lines(stderr: &[String]) -> String {
    if stderr.is_empty() {
        return String::new();
    }
    format!("; its last lines on stderr: {}", stderr.join(" | "))
}

/// What a server process sends its session.
#[derive(Debug)]
pub enum FromServer {
    /// One JSON-RPC message (a JSON object) it wrote on stdout.
    Message(Value),
    /// It ended, and was reaped; nothing follows.
    Ended(Ended),
}

/// A running server process. Dropping it stops the process (the supervisor sees the token go).
pub struct ServerProcess {
    /// Its process id.
    pub pid: u32,
    input: mpsc::Sender<Bytes>,
    stop: CancellationToken,
    stop_reason: Arc<Mutex<Option<Ended>>>,
}

impl ServerProcess {
    /// Starts `command` for the session named `label` (used in the log). Its messages, then its end, arrive
    /// on the returned receiver.
    pub fn spawn(command: &ServerCommand, label: &str) -> Result<(Self, mpsc::Receiver<FromServer>), SpawnError> {
        let mut child = tokio::process::Command::new(&command.program)
            .args(&command.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // The last resort: a supervisor that is itself dropped still takes the process with it.
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SpawnError {
                program: command.program.to_string_lossy().into_owned(),
                source,
            })?;
        let pid = child.id().unwrap_or_default();
        let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (input, queued) = mpsc::channel::<Bytes>(INPUT_QUEUE);
        let (to_session, from_server) = mpsc::channel(INPUT_QUEUE);
        let stop = CancellationToken::new();
        let stop_reason = Arc::new(Mutex::new(None));
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let label: Arc<str> = label.into();
        if let Some(stdin) = stdin {
            tokio::spawn(feed(stdin, queued, stop.clone(), stop_reason.clone()));
        }
        let stderr = stderr.map(|stderr| tokio::spawn(log_stderr(stderr, label.clone(), tail.clone())));
        let reader = stdout.map(|stdout| {
            tokio::spawn(read_messages(
                stdout,
                to_session.clone(),
                stop.clone(),
                stop_reason.clone(),
            ))
        });
        tokio::spawn(supervise(
            child,
            label,
            [reader, stderr],
            to_session,
            stop.clone(),
            stop_reason.clone(),
            tail,
        ));
        Ok((
            Self {
                pid,
                input,
                stop,
                stop_reason,
            },
            from_server,
        ))
    }

    /// Queues one message for the process's stdin, waiting at most [`WRITE_DEADLINE`] for room.
    pub async fn send(&self, message: Bytes) -> Result<(), Ended> {
        match tokio::time::timeout(WRITE_DEADLINE, self.input.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.ended_reason()),
            Err(_) => {
                let reason = Ended::NotReading { after: WRITE_DEADLINE };
                self.stop_for(reason.clone());
                Err(reason)
            }
        }
    }

    /// Queues one message for stdin if there is room now (a notification that must not hold its sender
    /// up); otherwise it is dropped.
    pub fn send_now(&self, message: Bytes) {
        let _ = self.input.try_send(message);
    }

    /// Ends the process (SIGTERM, then SIGKILL after the grace period), saying why.
    pub fn stop(&self, why: &'static str) {
        self.stop_for(Ended::Stopped { why });
    }

    fn stop_for(&self, reason: Ended) {
        lock(&self.stop_reason).get_or_insert(reason);
        self.stop.cancel();
    }

    fn ended_reason(&self) -> Ended {
        lock(&self.stop_reason).clone().unwrap_or(Ended::Stopped {
            why: "its input closed",
        })
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop("its session ended");
    }
}

/// Writes queued messages to stdin, one per line. A write that waits past the deadline means the process
/// no longer reads: it is stopped rather than left to block its session.
async fn feed(
    mut stdin: tokio::process::ChildStdin,
    mut queued: mpsc::Receiver<Bytes>,
    stop: CancellationToken,
    reason: Arc<Mutex<Option<Ended>>>,
) {
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            message = queued.recv() => match message {
                Some(message) => message,
                None => return,
            },
        };
        let write = async {
            stdin.write_all(&message).await?;
            stdin.write_all(b"\n").await?;
            stdin.flush().await
        };
        match tokio::time::timeout(WRITE_DEADLINE, write).await {
            Ok(Ok(())) => {}
            // A closed pipe: the process is ending; the supervisor reports how.
            Ok(Err(_)) => return,
            Err(_) => {
                lock(&reason).get_or_insert(Ended::NotReading { after: WRITE_DEADLINE });
                stop.cancel();
                return;
            }
        }
    }
}

/// Reads stdout: each line must be one JSON object. Anything else ends the process, for a server that
/// prints to stdout has lost its framing, and what it says next cannot be trusted to be a message.
async fn read_messages(
    stdout: tokio::process::ChildStdout,
    to_session: mpsc::Sender<FromServer>,
    stop: CancellationToken,
    reason: Arc<Mutex<Option<Ended>>>,
) {
    let limit = MAX_MESSAGE;
    let mut lines = FramedRead::new(stdout, LinesCodec::new_with_max_length(limit));
    while let Some(line) = lines.next().await {
        let failure = match line {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => match serde_json::from_str::<Value>(&line) {
                Ok(message) if message.is_object() => {
                    if to_session.send(FromServer::Message(message)).await.is_err() {
                        return;
                    }
                    continue;
                }
                _ => Ended::Garbage {
                    excerpt: line.chars().take(120).collect(),
                },
            },
            Err(LinesCodecError::MaxLineLengthExceeded) => Ended::TooLong { limit },
            Err(LinesCodecError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => Ended::Garbage {
                excerpt: "(bytes that are not UTF-8)".into(),
            },
            // The pipe failed: the process is ending; the supervisor reports how.
            Err(LinesCodecError::Io(_)) => return,
        };
        lock(&reason).get_or_insert(failure);
        stop.cancel();
        return;
    }
}

/// Writes stderr to the log, one line per line with the session it belongs to, at most
/// [`STDERR_LINES_PER_SECOND`] a second (a flood is counted, not logged, so it costs only its own process
/// a little CPU); the last lines are kept for the report when the process ends.
async fn log_stderr(stderr: tokio::process::ChildStderr, label: Arc<str>, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = FramedRead::new(stderr, LinesCodec::new_with_max_length(MAX_STDERR_LINE));
    let (mut window, mut logged, mut dropped) = (Instant::now(), 0u32, 0u64);
    while let Some(line) = lines.next().await {
        let line = match line {
            Ok(line) => line,
            Err(LinesCodecError::MaxLineLengthExceeded) => format!("(a line longer than {MAX_STDERR_LINE} bytes)"),
            Err(LinesCodecError::Io(_)) => return,
        };
        if window.elapsed() >= Duration::from_secs(1) {
            if dropped > 0 {
                tracing::warn!(session = %label, dropped, "server stderr: lines not logged (more than {STDERR_LINES_PER_SECOND} a second)");
            }
            (window, logged, dropped) = (Instant::now(), 0, 0);
        }
        if logged < STDERR_LINES_PER_SECOND {
            logged += 1;
            tracing::info!(session = %label, "server stderr: {line}");
        } else {
            dropped += 1;
        }
        let mut tail = lock(&tail);
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(line.chars().take(200).collect());
    }
}

/// Waits for the process to exit, or stops it when asked (SIGTERM, SIGKILL after [`STOP_GRACE`]); then
/// reports why it ended, once, after it is reaped.
async fn supervise(
    mut child: tokio::process::Child,
    label: Arc<str>,
    readers: [Option<tokio::task::JoinHandle<()>>; 2],
    to_session: mpsc::Sender<FromServer>,
    stop: CancellationToken,
    reason: Arc<Mutex<Option<Ended>>>,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let status = tokio::select! {
        status = child.wait() => status,
        _ = stop.cancelled() => terminate(&mut child).await,
    };
    // What it wrote before it exited (its messages, its last words on stderr) comes before its end; a
    // pipe that a process of its own still holds open is not waited for long.
    for reader in readers.into_iter().flatten() {
        let _ = tokio::time::timeout(READ_REMAINDER, reader).await;
    }
    let status = status.map_or_else(|e| format!("unknown: {e}"), |s| s.to_string());
    let stderr: Vec<String> = lock(&tail).iter().cloned().collect();
    let ended = lock(&reason).clone().unwrap_or(Ended::Exited {
        status: status.clone(),
        stderr: stderr.clone(),
    });
    match &ended {
        Ended::Stopped { .. } => tracing::info!(session = %label, %status, "server process ended: {ended}"),
        _ => tracing::warn!(session = %label, %status, last_stderr = ?stderr, "server process ended: {ended}"),
    }
    let _ = to_session.send(FromServer::Ended(ended)).await;
}

/// SIGTERM, then SIGKILL if the process is still there after the grace period.
async fn terminate(child: &mut tokio::process::Child) -> std::io::Result<std::process::ExitStatus> {
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        if let Ok(status) = tokio::time::timeout(STOP_GRACE, child.wait()).await {
            return status;
        }
    }
    child.kill().await?;
    child.wait().await
}
