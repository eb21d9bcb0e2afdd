//! Import and export of `{"mcpServers": {...}}` files, by API and command line.

use mcpo_test_support::{closed_port, FixtureHttp, TestApp};
use serde_json::{json, Value};

use crate::MCPO;

#[tokio::test]
async fn import_registers_each_entry_and_reports_each_failure() {
    let app = TestApp::spawn().await;
    let fixture = FixtureHttp::start(None).await;
    let closed = closed_port();
    let file = json!({ "mcpServers": {
        "local": { "command": MCPO, "args": ["fixture", "stdio"], "env": { "TOKEN": "s3cret" } },
        "remote": { "type": "http", "url": fixture.url, "headers": { "authorization": "Bearer s3cret" } },
        "Bad Name": { "command": MCPO, "args": ["fixture", "stdio"] },
        "old-sse": { "type": "sse", "url": "http://127.0.0.1:1/sse" },
        "down": { "url": format!("http://127.0.0.1:{closed}/mcp") },
    }});
    let response = app.import(&file).await;
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(
        (report["registered"].as_u64(), report["failed"].as_u64()),
        (Some(2), Some(3)),
        "{report:#}"
    );
    let outcome = |name: &str| {
        let entry = report["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()
            .clone();
        (
            entry["outcome"].as_str().unwrap().to_owned(),
            entry["code"].as_str().map(str::to_owned),
        )
    };
    assert_eq!(outcome("local"), ("registered".into(), None));
    assert_eq!(outcome("remote"), ("registered".into(), None));
    assert_eq!(
        outcome("Bad Name"),
        ("failed".into(), Some("invalid_request".into()))
    );
    // A legacy SSE entry is read; nothing listens on port 1.
    assert_eq!(
        outcome("old-sse"),
        ("failed".into(), Some("upstream_unreachable".into()))
    );
    assert_eq!(
        outcome("down"),
        ("failed".into(), Some("upstream_unreachable".into()))
    );

    // Export gives the file back, with every secret redacted.
    let exported = app.registry_get("/api/v1/mcpo/services:export").await;
    assert_eq!(exported.status(), 200);
    let text = exported.text().await.unwrap();
    assert!(!text.contains("s3cret"), "{text}");
    let exported: Value = serde_json::from_str(&text).unwrap();
    let servers = exported["mcpServers"].as_object().unwrap();
    assert_eq!(servers.keys().collect::<Vec<_>>(), ["local", "remote"]);
    assert_eq!(servers["local"]["command"], MCPO);
    assert_eq!(servers["local"]["env"]["TOKEN"], "[redacted]");
    assert_eq!(servers["remote"]["url"], fixture.url.as_str());
    assert_eq!(servers["remote"]["headers"]["authorization"], "[redacted]");

    // Not an mcpServers file at all.
    let wrong = app
        .http
        .post(format!("{}/api/v1/mcpo/services:import", app.registry_url))
        .json(&json!({ "servers": {} }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 422);
}

#[tokio::test]
async fn mcpo_import_registers_a_file_from_the_command_line() {
    let app = TestApp::spawn().await;
    let file = std::env::temp_dir().join(format!("mcp-{}.json", uuid::Uuid::new_v4().simple()));
    let servers =
        json!({ "mcpServers": { "cli-fx": { "command": MCPO, "args": ["fixture", "stdio"] } } });
    std::fs::write(&file, servers.to_string()).unwrap();
    let registry = app.registry_url.clone();
    let path = file.clone();
    let token = app.token(&["registry:admin"]);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(MCPO)
            .args(["import"])
            .arg(&path)
            .args(["--registry", &registry])
            .env("MCPO_TOKEN", token)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("registered  cli-fx  (4 tools)"), "{stdout}");

    // Importing it again fails for that entry, and the command says so in its exit code.
    let registry = app.registry_url.clone();
    let token = app.token(&["registry:admin"]);
    let again = tokio::task::spawn_blocking(move || {
        std::process::Command::new(MCPO)
            .args(["import"])
            .arg(&file)
            .args(["--registry", &registry])
            .env("MCPO_TOKEN", token)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("service_name_taken"));
}
