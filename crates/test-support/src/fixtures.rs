//! MCP servers to test against: MCPO's fixture server (stdio through a given
//! binary, or streamable HTTP and legacy SSE in-process) and the third-party
//! `@modelcontextprotocol/server-everything` (stdio, or SSE on a port).

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

/// The fixture over the legacy HTTP+SSE transport on a free port, stopped
/// on drop (which ends every stream it serves).
pub struct FixtureSse {
    pub url: String,
    shutdown: CancellationToken,
}

impl FixtureSse {
    pub async fn start(options: mcpo_fixture::SseOptions) -> FixtureSse {
        FixtureSse::start_on("127.0.0.1:0".parse().unwrap(), options).await
    }

    /// On a given address, e.g. the one of a fixture that was stopped.
    pub async fn start_on(
        addr: std::net::SocketAddr,
        options: mcpo_fixture::SseOptions,
    ) -> FixtureSse {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let url = format!("http://{}/sse", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(mcpo_fixture::serve_sse(listener, options, shutdown.clone()));
        FixtureSse { url, shutdown }
    }

    /// Requiring `name: value` on every request.
    pub async fn requiring_header(name: &str, value: &str) -> FixtureSse {
        FixtureSse::start(mcpo_fixture::SseOptions {
            required_header: Some((name.to_owned(), value.to_owned())),
            ..Default::default()
        })
        .await
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.url
            .trim_start_matches("http://")
            .trim_end_matches("/sse")
            .parse()
            .unwrap()
    }

    pub fn transport(&self) -> Value {
        json!({ "type": "sse", "url": self.url })
    }
}

impl Drop for FixtureSse {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// server-everything in its SSE mode (`node dist/index.js sse`), on a free
/// port, killed on drop.
pub struct EverythingSse {
    pub url: String,
    // Dropping it kills node (`kill_on_drop`).
    _process: tokio::process::Child,
}

impl EverythingSse {
    pub async fn start() -> EverythingSse {
        // The server takes its port from `PORT` and cannot be told to pick
        // one, so we pick a free one; should something take it before node
        // binds, node exits and we try another.
        let mut failures = Vec::new();
        for _ in 0..3 {
            match EverythingSse::start_on(crate::net::closed_port()).await {
                Ok(server) => return server,
                Err(output) => failures.push(output),
            }
        }
        panic!(
            "server-everything (sse) did not start:\n{}",
            failures.join("\n---\n")
        );
    }

    /// Starts node and waits for its "running on port" line, then for the
    /// port to answer; `Err` has what node printed if it exited instead.
    async fn start_on(port: u16) -> Result<EverythingSse, String> {
        use tokio::io::AsyncBufReadExt;
        let mut process = tokio::process::Command::new("node")
            .arg(everything_entry())
            .arg("sse")
            .env("PORT", port.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (server-everything needs Node.js)");
        let stderr = process.stderr.take().expect("stderr is piped");
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let ready = format!("running on port {port}");
        // Bounds only how long a broken install may hang a test: the line
        // comes as soon as node listens.
        let started = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            let mut seen = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains(&ready) {
                    return Ok(());
                }
                seen.push(line);
            }
            Err(seen.join("\n"))
        })
        .await
        .map_err(|_| "no `running on port` line within 60 s".to_owned())?;
        started?;
        // It logs every message: keep reading, or it blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        crate::eventually::eventually("server-everything (sse) accepts connections", async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map(|_| ())
        })
        .await;
        Ok(EverythingSse {
            url: format!("http://127.0.0.1:{port}/sse"),
            _process: process,
        })
    }

    pub fn transport(&self) -> Value {
        json!({ "type": "sse", "url": self.url })
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
