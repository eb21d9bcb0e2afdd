//! MCP servers to test against: MCPO's fixture server (stdio through a given
//! binary, or streamable HTTP in-process) and the third-party
//! `@modelcontextprotocol/server-everything`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Transport JSON for the fixture over stdio, run as `<mcpo> fixture stdio`.
pub fn fixture_stdio(mcpo_binary: &str, tools_file: Option<&Path>) -> Value {
    let mut args = vec!["fixture".to_owned(), "stdio".to_owned()];
    if let Some(file) = tools_file {
        args.push("--tools-file".into());
        args.push(file.to_string_lossy().into_owned());
    }
    json!({ "type": "stdio", "command": mcpo_binary, "args": args })
}

/// The fixture over streamable HTTP on a free port, stopped on drop.
pub struct FixtureHttp {
    pub url: String,
    shutdown: CancellationToken,
}

impl FixtureHttp {
    pub async fn start(tools_file: Option<PathBuf>) -> FixtureHttp {
        FixtureHttp::start_on("127.0.0.1:0".parse().unwrap(), tools_file).await
    }

    /// On a given address, e.g. the one of a fixture that was stopped.
    pub async fn start_on(addr: std::net::SocketAddr, tools_file: Option<PathBuf>) -> FixtureHttp {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(mcpo_fixture::serve_http(
            listener,
            tools_file,
            shutdown.clone(),
        ));
        FixtureHttp { url, shutdown }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.url
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .parse()
            .unwrap()
    }

    pub fn transport(&self) -> Value {
        json!({ "type": "streamable_http", "url": self.url })
    }
}

impl Drop for FixtureHttp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Where `npm ci` in `crates/test-support/peers` put the third-party server.
pub fn everything_entry() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        path.exists(),
        "{} is missing: run the test command from the README (it runs `npm ci` in crates/test-support/peers)",
        path.display()
    );
    path
}

/// Transport JSON for server-everything over stdio.
pub fn everything_stdio() -> Value {
    json!({ "type": "stdio", "command": "node", "args": [everything_entry().to_string_lossy(), "stdio"] })
}

/// A temporary tools file for the fixture's `--tools-file`, removed on drop.
pub struct ToolsFile {
    pub path: PathBuf,
}

impl ToolsFile {
    pub fn new(tools: &[&str]) -> ToolsFile {
        let path =
            std::env::temp_dir().join(format!("mcpo-tools-{}.json", uuid::Uuid::new_v4().simple()));
        let file = ToolsFile { path };
        file.set(tools);
        file
    }

    pub fn set(&self, tools: &[&str]) {
        std::fs::write(&self.path, serde_json::to_vec(tools).unwrap()).unwrap();
    }
}

impl Drop for ToolsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
