//! `mcpo up --demo`, the README's run command, as a real process.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use mcpo_test_support::database::TestDatabase;

use crate::processes::{children_of, stat, terminate};
use serde_json::{json, Value};

struct Running(std::process::Child, std::path::PathBuf);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

type Lines = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// Starts `mcpo up --demo` on free ports against `database` and a NATS
/// prefix of its own; returns it with its output and its three base URLs.
fn spawn_up(database: &TestDatabase, id: &str) -> (Running, Lines, String, String, String) {
    spawn_up_with(database, id, &[])
}

/// `spawn_up` with more environment variables.
fn spawn_up_with(
    database: &TestDatabase,
    id: &str,
    env: &[(&str, &str)],
) -> (Running, Lines, String, String, String) {
    // Where `mcpo up` keeps its local secrets key.
    let data_home = std::env::temp_dir().join(format!("mcpo-up-{id}"));
    let mut child = Command::new(crate::MCPO)
        .args(["up", "--demo"])
        // As the README runs it.
        .env("MCPO_AUTH", "disabled")
        .env("XDG_DATA_HOME", &data_home)
        .env_remove("MCPO_SECRET_KEYS")
        .env(
            "DATABASE_URL",
            secrecy::ExposeSecret::expose_secret(&database.url),
        )
        .env("MCPO_NATS_PREFIX", format!("t{id}"))
        .env("MCPO_NATS_STREAM", format!("T{id}"))
        .env("MCPO_REGISTRY_ADDR", "127.0.0.1:0")
        .env("MCPO_EXECUTOR_ADDR", "127.0.0.1:0")
        .env("MCPO_PUBLISHER_ADDR", "127.0.0.1:0")
        .env("MCPO_HTTP_WORKERS", "1")
        .env_remove("MCPO_EXECUTOR_PUBLIC_URL")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child, data_home);
    // The banner names the three URLs; JSON log lines go to stdout too.
    let mut lines = BufReader::new(stdout).lines();
    let mut urls = std::collections::HashMap::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [name @ ("registry" | "executor" | "publisher"), url] = words.as_slice() {
            urls.insert(name.to_string(), url.to_string());
        }
        if let ["auth", mode, ..] = words.as_slice() {
            // Loud in the banner, not only in the log.
            assert!(mode.starts_with("DISABLED"), "{line}");
            urls.insert("auth".into(), line.clone());
        }
        if urls.len() == 4 {
            break;
        }
    }
    let executor = urls["executor"]
        .trim_end_matches("/tools/{service}/{tool}")
        .to_owned();
    (
        running,
        lines,
        urls["registry"].clone(),
        executor,
        urls["publisher"].clone(),
    )
}

async fn delete_stream(id: &str) {
    let nats = mcpo_core::config::NatsSettings {
        url: "nats://127.0.0.1:4222".into(),
        subject_prefix: format!("t{id}"),
        stream: format!("T{id}"),
    };
    mcpo_core::events::EventBus::connect(&nats)
        .await
        .unwrap()
        .delete_stream()
        .await
        .unwrap();
}

#[tokio::test]
async fn up_with_demo_serves_the_fixture_at_once() {
    let database = TestDatabase::create().await;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (running, lines, registry, executor, publisher) = spawn_up(&database, &id);
    let http = reqwest::Client::new();

    let services: Value = http
        .get(&registry)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(services["services"][0]["name"], "demo");
    let tools: Value = http
        .get(format!("{registry}/demo/tools"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let echo = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "echo")
        .unwrap();
    assert_eq!(echo["endpoint"], format!("{executor}/tools/demo/echo"));

    let answer = http
        .post(format!("{executor}/tools/demo/echo"))
        .header("x-request-id", format!("up-{id}"))
        .json(&json!({ "message": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap(), json!("hi"));
    // The publisher follows events: the demo's paths appear shortly after start.
    let doc = mcpo_test_support::eventually("the demo's paths are published", async || {
        let doc: Value = http
            .get(&publisher)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if doc["paths"].get("/tools/demo/add").is_some() {
            Ok(doc)
        } else {
            Err(doc)
        }
    })
    .await;
    assert!(doc["paths"].get("/tools/demo/add").is_some(), "{doc:#}");
    // Every log line is JSON; the request's lines carry its id in their span.
    let request_id = format!("up-{id}");
    let logged = std::thread::spawn(move || {
        for line in lines {
            let line = line.unwrap();
            if line.starts_with("  ") {
                continue; // the rest of the banner
            }
            let entry: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON log line: {line}: {e}"));
            let spans = entry["spans"].as_array().cloned().unwrap_or_default();
            if spans.iter().any(|s| s["request_id"] == request_id.as_str())
                && entry["message"] == "request finished"
            {
                return Some(entry);
            }
        }
        None
    });
    // Stopping the process ends the stream, so the reader cannot hang.
    for _ in 0..150 {
        if logged.is_finished() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(running);
    let entry = logged
        .join()
        .unwrap()
        .expect("a log line carries the request id");
    assert_eq!(entry["status"], 200);

    delete_stream(&id).await;
}

/// Calls the demo once, so its stdio server runs as a child of `mcpo up`;
/// returns that child.
async fn open_demo_session(http: &reqwest::Client, executor: &str, pid: u32) -> Vec<u32> {
    let warm = http
        .post(format!("{executor}/tools/demo/echo"))
        .json(&json!({ "message": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);
    let servers = children_of(pid);
    assert_eq!(
        servers.len(),
        1,
        "one stdio server for the demo: {servers:?}"
    );
    servers
}

/// Starts a `slow` call of `ms`, then sends SIGTERM to `mcpo up` while it runs.
async fn call_slow_then_sigterm(
    http: &reqwest::Client,
    executor: &str,
    pid: u32,
    ms: u64,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let call = http
        .post(format!("{executor}/tools/demo/slow"))
        .json(&json!({ "ms": ms }));
    let slow = tokio::spawn(call.send());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    terminate(pid);
    slow
}

#[tokio::test]
async fn sigterm_finishes_calls_in_flight_exits_zero_and_leaves_no_server_behind() {
    let database = TestDatabase::create().await;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (mut running, _lines, _registry, executor, _publisher) = spawn_up(&database, &id);
    let pid = running.0.id();
    let http = reqwest::Client::new();
    let servers = open_demo_session(&http, &executor, pid).await;
    let slow = call_slow_then_sigterm(&http, &executor, pid, 1500).await;

    let answer = slow.await.unwrap().expect("the call in flight is answered");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap(), json!("slept 1500ms"));
    let status = tokio::task::spawn_blocking(move || running.0.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    for server in servers {
        // Gone, or at most a zombie already reaped by nobody we know of: never running.
        assert!(
            stat(server).is_none_or(|(_, state)| state == 'Z'),
            "stdio server {server} outlived mcpo up"
        );
    }
    delete_stream(&id).await;
}

#[tokio::test]
async fn a_call_that_outlasts_the_shutdown_deadline_does_not_keep_mcpo_up_running() {
    let database = TestDatabase::create().await;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (mut running, _lines, _registry, executor, _publisher) =
        spawn_up_with(&database, &id, &[("MCPO_SHUTDOWN_TIMEOUT_SECS", "1")]);
    let pid = running.0.id();
    let http = reqwest::Client::new();
    let servers = open_demo_session(&http, &executor, pid).await;
    // A call that would take ten minutes.
    let endless = call_slow_then_sigterm(&http, &executor, pid, 600_000).await;

    // Past the deadline the call is dropped, and mcpo up exits cleanly.
    let status = tokio::task::spawn_blocking(move || running.0.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let answer = endless.await.unwrap();
    assert!(answer.is_err() || answer.unwrap().status().is_server_error());
    for server in servers {
        assert!(
            stat(server).is_none_or(|(_, state)| state == 'Z'),
            "stdio server {server} outlived mcpo up"
        );
    }
    delete_stream(&id).await;
}
