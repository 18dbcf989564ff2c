//! The demo: the math and date example servers on loopback, and the sidecar in front of them.

use crate::{self as examples, Example};
use mcplex::app::{Options, Sidecar};
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A local port or file could not be used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The sidecar did not start.
    #[error(transparent)]
    Sidecar(#[from] mcplex::app::StartError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DemoError {
    let what = what.into();
    move |source| DemoError::Io { what, source }
}

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(listen: SocketAddr, admin: SocketAddr) -> Result<(), DemoError> {
    let servers = CancellationToken::new();
    let mut urls = Vec::new();
    for example in [Example::Math, Example::Date] {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io(format!("cannot start the {example:?} example server")))?;
        let addr = listener
            .local_addr()
            .map_err(io("cannot read the example server's address"))?;
        urls.push(format!("http://{addr}/mcp"));
        tokio::spawn(examples::run(example, listener, None, servers.clone()));
    }
    let dir = std::env::temp_dir().join(format!("mcplex-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
    let config_path = dir.join("config.yaml");
    let config = format!(
        "# Edit me while the demo runs: mcplex applies changes live.\ntargets:\n  - name: math\n    url: {}\n  - name: date\n    url: {}\n",
        urls[0], urls[1]
    );
    std::fs::write(&config_path, config).map_err(io(format!("cannot write {}", config_path.display())))?;
    let mut options = Options::new(config_path.clone());
    options.listen = listen;
    options.admin = admin;
    let sidecar = Sidecar::start(options).await?;
    let mcp = format!("http://{}/mcp", sidecar.mcp_addr);
    println!(
        "\nmcplex demo is running.\n\n  example servers: math at {}, date at {}\n  config (edit it live): {}\n  MCP endpoint:    {mcp}\n  admin:           http://{}/status\n\nTry it:\n  curl -s {mcp} -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\\n    -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: math_add' \\\n    -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"math_add\",\"arguments\":{{\"a\":2,\"b\":3}},\"_meta\":{{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{{}}}}}}}}'\n  npx @modelcontextprotocol/inspector --cli {mcp} --transport http --method tools/list\n\nPress Ctrl-C to stop.\n",
        urls[0],
        urls[1],
        config_path.display(),
        sidecar.admin_addr,
    );
    mcplex::app::wait_for_signal().await;
    sidecar.stop().await;
    servers.cancel();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
