//! The sentence-embedding server of `tools/embedder` (built by scripts/install-test-tools), serving the
//! real all-MiniLM-L6-v2 from the PyPI wheel that script unpacks.

use crate::support::node::tools_dir;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The model's name, as the server serves it and a config asks for it.
pub const MODEL: &str = "all-MiniLM-L6-v2";

/// A running embedding server; it is killed when dropped.
pub struct EmbeddingServer {
    /// Its `/v1/embeddings` URL.
    pub url: String,
    _child: Child,
}

impl EmbeddingServer {
    /// Starts one, requiring `api_key` as a bearer token when given.
    pub async fn start(api_key: Option<&str>) -> Self {
        let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/embedder/target/release/mcplex-embedder");
        let model = tools_dir().join("models").join(MODEL);
        assert!(
            binary.is_file() && model.join("model.safetensors").is_file(),
            "the embedding server or its model is missing: run scripts/install-test-tools"
        );
        let mut command = Command::new(binary);
        command
            .args(["--listen", "127.0.0.1:0", "--name", MODEL, "--model-dir"])
            .arg(model)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(key) = api_key {
            command.args(["--api-key", key]);
        }
        let mut child = command.spawn().expect("the embedding server runs");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .expect("the embedding server loads its model within 30 s")
            .unwrap()
            .expect("the embedding server prints its address");
        let base = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the embedding server printed `{line}`"));
        Self {
            url: format!("{base}/v1/embeddings"),
            _child: child,
        }
    }

    /// Stops (`true`) or resumes (`false`) the server's process: stopped, it holds every connection and
    /// answers nothing, as a hung endpoint does.
    pub fn freeze(&self, stopped: bool) {
        let pid = self
            ._child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32));
        let signal = if stopped {
            rustix::process::Signal::STOP
        } else {
            rustix::process::Signal::CONT
        };
        rustix::process::kill_process(pid.expect("the embedding server runs"), signal).expect("the signal is sent");
    }
}
