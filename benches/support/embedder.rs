//! The embedding server of `tools/embedder` with the real all-MiniLM-L6-v2 that
//! `scripts/install-test-tools` unpacks, for the benches' semantic rows.

use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A running embedding server (killed when dropped) and its `/v1/embeddings` URL; `None`, with a note,
/// when the server or the model is missing.
pub async fn embedder() -> Option<(tokio::process::Child, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let binary = root.join("tools/embedder/target/release/mcplex-embedder");
    let model = root.join(".ci-tools/models/all-MiniLM-L6-v2");
    if !binary.is_file() || !model.is_dir() {
        eprintln!("no embedding server or model: run scripts/install-test-tools for the semantic rows");
        return None;
    }
    let mut child = tokio::process::Command::new(binary)
        .args(["--listen", "127.0.0.1:0", "--model-dir"])
        .arg(model)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the embedding server starts");
    let mut lines = BufReader::new(child.stdout.take()?).lines();
    let line = lines.next_line().await.ok()??;
    let url = format!("{}/v1/embeddings", line.strip_prefix("listening on ")?);
    Some((child, url))
}
