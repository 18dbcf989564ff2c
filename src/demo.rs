//! `mcplex demo`: the math and date example servers on loopback, and the sidecar in front of them.

use crate::app::{Options, Sidecar};
use crate::examples::{self, Example};
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(listen: SocketAddr, admin: SocketAddr) -> Result<(), String> {
    let servers = CancellationToken::new();
    let mut urls = Vec::new();
    for example in [Example::Math, Example::Date] {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot start the {example:?} example server: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        urls.push(format!("http://{addr}/mcp"));
        tokio::spawn(examples::run(example, listener, None, servers.clone()));
    }
    let dir = std::env::temp_dir().join(format!("mcplex-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let config_path = dir.join("config.yaml");
    let config = format!(
        "# Edit me while the demo runs: mcplex applies changes live.\ntargets:\n  - name: math\n    url: {}\n  - name: date\n    url: {}\n",
        urls[0], urls[1]
    );
    std::fs::write(&config_path, config).map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
    let mut options = Options::new(config_path.clone());
    options.listen = listen;
    options.admin = admin;
    let sidecar = Sidecar::start(options).await.map_err(|e| e.to_string())?;
    let mcp = format!("http://{}/mcp", sidecar.mcp_addr);
    println!(
        "\nmcplex demo is running.\n\n  example servers: math at {}, date at {}\n  config (edit it live): {}\n  MCP endpoint:    {mcp}\n  admin:           http://{}/status\n\nTry it:\n  curl -s {mcp} -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\\n    -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: math_add' \\\n    -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"math_add\",\"arguments\":{{\"a\":2,\"b\":3}},\"_meta\":{{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{{}}}}}}}}'\n  npx @modelcontextprotocol/inspector --cli {mcp} --transport http --method tools/list\n\nPress Ctrl-C to stop.\n",
        urls[0],
        urls[1],
        config_path.display(),
        sidecar.admin_addr,
    );
    crate::app::wait_for_signal().await;
    sidecar.stop().await;
    servers.cancel();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
