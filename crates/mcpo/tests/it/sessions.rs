//! How the executor holds a service's sessions: a shared pool taken in turn,
//! or one session per caller (stateful servers), closed once idle.

use std::collections::HashSet;
use std::time::Duration;

use mcpo_test_support::{eventually, TestApp, ToolsFile};
use serde_json::{json, Value};

fn fixture_with_pid(name: &str, tools: &ToolsFile, options: Value) -> Value {
    let mut body = crate::stdio_fixture(name, Some(&tools.path));
    for (key, value) in options.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

/// The process id of the fixture that answered.
async fn pid_of(client: &reqwest::Client, app: &TestApp, service: &str, key: Option<&str>) -> u64 {
    let mut request = client
        .post(format!("{}/tools/{service}/process_id", app.executor_url))
        .json(&json!({}));
    if let Some(key) = key {
        request = request.header("x-session-key", key);
    }
    let answer = request.send().await.unwrap();
    assert_eq!(answer.status(), 200);
    answer.json::<Value>().await.unwrap()["pid"]
        .as_u64()
        .unwrap()
}

fn running(pid: u64) -> bool {
    crate::processes::running(pid as u32)
}

#[tokio::test]
async fn a_pool_spreads_calls_over_its_sessions() {
    let app = TestApp::spawn().await;
    let tools = ToolsFile::new(&["echo", "process_id"]);
    let answer = app
        .register(&fixture_with_pid(
            "pooled",
            &tools,
            json!({ "session_pool_size": 3 }),
        ))
        .await;
    assert_eq!(answer.status(), 201);
    assert_eq!(
        answer.json::<Value>().await.unwrap()["session_pool_size"],
        3
    );

    // Taken in turn: six calls meet each of the three processes.
    let mut pids = HashSet::new();
    for _ in 0..6 {
        pids.insert(pid_of(&app.http, &app, "pooled", None).await);
    }
    assert_eq!(pids.len(), 3, "{pids:?}");

    // Out of range is refused, naming the field.
    let refused = app
        .register(&fixture_with_pid(
            "huge",
            &tools,
            json!({ "session_pool_size": 17 }),
        ))
        .await;
    assert_eq!(refused.status(), 422);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["details"]["field"],
        "session_pool_size"
    );
}

#[tokio::test]
async fn each_caller_of_a_stateful_service_has_a_session_of_its_own() {
    let app = TestApp::spawn_with(|settings| {
        settings.caller_sessions.idle = Duration::from_secs(1);
        settings.caller_sessions.max_per_service = 3;
    })
    .await;
    let tools = ToolsFile::new(&["echo", "process_id"]);
    assert_eq!(
        app.register(&fixture_with_pid(
            "stateful",
            &tools,
            json!({ "session_scope": "per_caller" })
        ))
        .await
        .status(),
        201
    );
    let alice = app.client_with(&["tools:invoke"]);
    let bob = app.client_with(&["tools:invoke"]);

    let alice_pid = pid_of(&alice, &app, "stateful", None).await;
    assert_eq!(pid_of(&alice, &app, "stateful", None).await, alice_pid);
    let bob_pid = pid_of(&bob, &app, "stateful", None).await;
    assert_ne!(alice_pid, bob_pid);
    // One principal may keep several sessions apart with X-Session-Key.
    let alice_other = pid_of(&alice, &app, "stateful", Some("tab-2")).await;
    assert!(![alice_pid, bob_pid].contains(&alice_other));
    assert_eq!(
        pid_of(&alice, &app, "stateful", Some("tab-2")).await,
        alice_other
    );

    // A fourth caller finds the service full.
    let carol = app.client_with(&["tools:invoke"]);
    let refused = carol
        .post(format!("{}/tools/stateful/echo", app.executor_url))
        .json(&json!({ "message": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.json::<Value>().await.unwrap()["code"], "overloaded");

    // Unused, the sessions close and their processes exit.
    for pid in [alice_pid, bob_pid, alice_other] {
        eventually(
            &format!("the idle session's process {pid} exits"),
            async || {
                if running(pid) {
                    Err(pid)
                } else {
                    Ok(())
                }
            },
        )
        .await;
    }
    // A caller coming back gets a new session.
    assert_ne!(pid_of(&alice, &app, "stateful", None).await, alice_pid);
}

/// Calls `tool` over and over until `stop`, and counts the answers by status.
async fn keep_calling(
    app: &TestApp,
    tool: &str,
    body: Value,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> std::collections::BTreeMap<u16, usize> {
    let mut seen = std::collections::BTreeMap::new();
    while !*stop.borrow() {
        let answer = app.call_tool("crashy", tool, &body).await;
        *seen.entry(answer.status().as_u16()).or_insert(0) += 1;
    }
    seen
}

#[tokio::test]
async fn a_stdio_server_killed_under_load_fails_only_its_calls_in_flight_and_is_started_again() {
    let app = TestApp::spawn().await;
    let tools = ToolsFile::new(&["echo", "slow", "process_id"]);
    assert_eq!(
        app.register(&fixture_with_pid("crashy", &tools, json!({})))
            .await
            .status(),
        201
    );
    let first = pid_of(&app.http, &app, "crashy", None).await;

    // Load while the server dies: four callers calling `echo` in a loop, and
    // calls that would sleep for ten minutes, in flight on the same process.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let load: Vec<_> = (0..4)
        .map(|_| keep_calling(&app, "echo", json!({ "message": "hi" }), &stopped))
        .collect();
    let load = futures::future::join_all(load);
    let ten_minutes = json!({ "ms": 600_000 });
    let stuck: Vec<_> = (0..8)
        .map(|_| app.call_tool("crashy", "slow", &ten_minutes))
        .collect();
    let stuck = futures::future::join_all(stuck);
    let crash = async {
        // The stuck calls reach the server within moments; only then is it killed.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(running(first));
        std::process::Command::new("kill")
            .args(["-9", &first.to_string()])
            .status()
            .unwrap();
        // A new process answers, while the load goes on.
        let second = eventually("a new server process answers", async || {
            let answer = app.call_tool("crashy", "process_id", &json!({})).await;
            match answer.status().as_u16() {
                200 => Ok(answer.json::<Value>().await.unwrap()["pid"]
                    .as_u64()
                    .unwrap()),
                other => Err(other),
            }
        })
        .await;
        // Let the load run against the new process too.
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.send(true).unwrap();
        second
    };
    let (counts, stuck, second) = tokio::join!(load, stuck, crash);

    assert_ne!(second, first);
    assert!(!running(first), "the killed server {first} is still there");
    // Every call that was waiting on the dead process got a clear 502 at
    // once: none waited for the 20 s call timeout (504).
    for answer in stuck {
        assert_eq!(answer.status(), 502);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["code"], "upstream_unreachable", "{body}");
    }
    // The load saw answers, failures of calls in flight at the crash, and
    // nothing else: no 500, no timeout.
    for seen in counts {
        assert!(seen.get(&200).is_some_and(|&n| n > 0), "{seen:?}");
        assert!(
            seen.keys().all(|status| [200, 502].contains(status)),
            "{seen:?}"
        );
    }
    assert_eq!(pid_of(&app.http, &app, "crashy", None).await, second);
}
