//! `mcpo up --demo`, the README's run command, as a real process.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use mcpo_test_support::database::TestDatabase;
use serde_json::{json, Value};

struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn up_with_demo_serves_the_fixture_at_once() {
    let database = TestDatabase::create().await;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut child = Command::new(crate::MCPO)
        .args(["up", "--demo"])
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
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);

    // The banner names the three URLs; JSON log lines go to stdout too.
    let mut lines = BufReader::new(stdout).lines();
    let mut urls = std::collections::HashMap::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [name @ ("registry" | "executor" | "publisher"), url] = words.as_slice() {
            urls.insert(name.to_string(), url.to_string());
        }
        if urls.len() == 3 {
            break;
        }
    }
    let registry = urls["registry"].clone();
    let executor = urls["executor"]
        .trim_end_matches("/tools/{service}/{tool}")
        .to_owned();
    let publisher = urls["publisher"].clone();
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
    let mut doc = Value::Null;
    for _ in 0..100 {
        doc = http
            .get(&publisher)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if doc["paths"].get("/tools/demo/add").is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
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
