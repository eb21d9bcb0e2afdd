use mcpo_test_support::{eventually, FixtureHttp, TestApp, ToolsFile};
use serde_json::{json, Value};

use crate::stdio_fixture;

#[tokio::test]
async fn maps_tool_results_to_http_answers() {
    let app = TestApp::spawn().await;
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);

    let echo = app
        .call_tool("fx", "echo", &json!({ "message": "hello" }))
        .await;
    assert_eq!(echo.status(), 200);
    assert_eq!(echo.json::<Value>().await.unwrap(), json!("hello"));

    // Text that is JSON comes back as JSON.
    let json_text = app
        .call_tool("fx", "echo", &json!({ "message": "{\"k\": [1, 2]}" }))
        .await;
    assert_eq!(
        json_text.json::<Value>().await.unwrap(),
        json!({ "k": [1, 2] })
    );

    let add = app.call_tool("fx", "add", &json!({ "a": 2, "b": 3 })).await;
    assert_eq!(add.status(), 200);
    assert_eq!(add.json::<Value>().await.unwrap(), json!({ "sum": 5.0 }));

    let fail = app
        .call_tool("fx", "fail", &json!({ "message": "broken on purpose" }))
        .await;
    assert_eq!(fail.status(), 502);
    let body: Value = fail.json().await.unwrap();
    assert_eq!(body["code"], "tool_error");
    assert_eq!(body["details"]["content"][0]["text"], "broken on purpose");

    let unknown_tool = app.call_tool("fx", "nope", &json!({})).await;
    assert_eq!(unknown_tool.status(), 404);
    assert_eq!(
        unknown_tool.json::<Value>().await.unwrap()["code"],
        "tool_not_found"
    );
    let unknown_service = app.call_tool("nope", "echo", &json!({})).await;
    assert_eq!(unknown_service.status(), 404);
    assert_eq!(
        unknown_service.json::<Value>().await.unwrap()["code"],
        "service_not_found"
    );
    // Remembered misses (answered from memory for a moment) do not keep a
    // name from serving once it is registered.
    let again = app.call_tool("nope", "echo", &json!({})).await;
    assert_eq!(again.status(), 404);
    assert_eq!(
        app.register(&stdio_fixture("nope", None)).await.status(),
        201
    );
    eventually("the new service answers", async || {
        let answer = app
            .call_tool("nope", "echo", &json!({ "message": "found" }))
            .await;
        match answer.status().as_u16() {
            200 => Ok(()),
            status => Err(status),
        }
    })
    .await;
}

#[tokio::test]
async fn rejects_bodies_that_are_not_argument_objects() {
    let app = TestApp::spawn().await;
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    let url = format!("{}/tools/fx/echo", app.executor_url);

    let not_json = app.http.post(&url).body("{not json").send().await.unwrap();
    assert_eq!(not_json.status(), 400);
    assert_eq!(
        not_json.json::<Value>().await.unwrap()["code"],
        "invalid_json"
    );

    let array = app
        .http
        .post(&url)
        .json(&json!([1, 2]))
        .send()
        .await
        .unwrap();
    assert_eq!(array.status(), 422);
    assert_eq!(
        array.json::<Value>().await.unwrap()["code"],
        "invalid_request"
    );

    // Arguments of the wrong type are caught against the tool's schema.
    let wrong = app
        .call_tool("fx", "add", &json!({ "a": "two", "b": 3 }))
        .await;
    assert_eq!(wrong.status(), 422);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["code"],
        "invalid_arguments"
    );
}

/// Every process whose command line mentions `marker`.
fn processes_mentioning(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| std::fs::read(entry.ok()?.path().join("cmdline")).ok())
        .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(marker))
        .count()
}

#[tokio::test]
async fn concurrent_calls_share_one_stdio_session() {
    let app = TestApp::spawn().await;
    // A tools file unique to this test lets us find the server's process.
    let tools_file = ToolsFile::new(&["echo", "slow"]);
    assert_eq!(
        app.register(&stdio_fixture("fx", Some(&tools_file.path)))
            .await
            .status(),
        201
    );
    let marker = tools_file.path.to_string_lossy().into_owned();

    let calls = (0..24).map(|i| {
        let app = &app;
        async move {
            let response = app.call_tool("fx", "slow", &json!({ "ms": 200 + i })).await;
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    });
    let answers = futures::future::join_all(calls).await;
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer, &json!(format!("slept {}ms", 200 + i)));
    }
    assert_eq!(
        processes_mentioning(&marker),
        1,
        "one server process serves every call"
    );
    let echo = app
        .call_tool("fx", "echo", &json!({ "message": "still one" }))
        .await;
    assert_eq!(echo.status(), 200);
    assert_eq!(processes_mentioning(&marker), 1);
}

#[tokio::test]
async fn a_crashed_stdio_server_is_started_again_on_the_next_call() {
    let app = TestApp::spawn().await;
    let tools_file = ToolsFile::new(&["echo"]);
    assert_eq!(
        app.register(&stdio_fixture("fx", Some(&tools_file.path)))
            .await
            .status(),
        201
    );
    let marker = tools_file.path.to_string_lossy().into_owned();
    assert_eq!(
        app.call_tool("fx", "echo", &json!({ "message": "1" }))
            .await
            .status(),
        200
    );

    kill_processes_mentioning(&marker);
    let mut status = 0;
    // The first call after the crash may fail (the session was in use); a later one reconnects.
    for _ in 0..3 {
        status = app
            .call_tool("fx", "echo", &json!({ "message": "2" }))
            .await
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        assert_eq!(status, 502);
    }
    assert_eq!(status, 200);
}

fn kill_processes_mentioning(marker: &str) {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            let pid = entry.file_name().to_string_lossy().into_owned();
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid])
                .status();
        }
    }
    while processes_mentioning(marker) > 0 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_call_past_the_timeout_is_a_gateway_timeout_and_others_go_on() {
    let app = TestApp::spawn_with(|settings| {
        settings.tool_call_timeout = std::time::Duration::from_secs(1)
    })
    .await;
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    let slow_args = json!({ "ms": 5000 });
    let slow = app.call_tool("fx", "slow", &slow_args);
    let quick = async {
        // Sent while the slow call is in flight on the same session.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        app.call_tool("fx", "echo", &json!({ "message": "not blocked" }))
            .await
    };
    let (slow, quick) = tokio::join!(slow, quick);
    assert_eq!(quick.status(), 200);
    assert_eq!(slow.status(), 504);
    assert_eq!(
        slow.json::<Value>().await.unwrap()["code"],
        "upstream_timeout"
    );
    // The session survives a timed-out call.
    assert_eq!(
        app.call_tool("fx", "echo", &json!({ "message": "after" }))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn oversized_bodies_and_wrong_methods_get_json_errors() {
    let app = TestApp::spawn().await;
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    let big = json!({ "message": "x".repeat(2 * 1024 * 1024) });
    let response = app.call_tool("fx", "echo", &big).await;
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "payload_too_large"
    );

    let get = app
        .http
        .get(format!("{}/tools/fx/echo", app.executor_url))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    assert_eq!(
        get.json::<Value>().await.unwrap()["code"],
        "method_not_allowed"
    );

    // A tool without required arguments accepts an empty body.
    let empty = app
        .http
        .post(format!("{}/tools/fx/fail", app.executor_url))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 502);
    assert_eq!(
        empty.json::<Value>().await.unwrap()["details"]["content"][0]["text"],
        "the fail tool always fails"
    );
}

#[tokio::test]
async fn arguments_are_checked_against_the_schema_before_the_server_is_contacted() {
    let app = TestApp::spawn().await;
    let tools_file = ToolsFile::new(&["add", "slow"]);
    assert_eq!(
        app.register(&stdio_fixture("fx", Some(&tools_file.path)))
            .await
            .status(),
        201
    );
    let marker = tools_file.path.to_string_lossy().into_owned();

    let rejected = app.call_tool("fx", "add", &json!({ "a": "two" })).await;
    assert_eq!(rejected.status(), 422);
    let body: Value = rejected.json().await.unwrap();
    assert_eq!(body["code"], "invalid_arguments");
    let errors = body["details"]["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["pointer"] == "/a" && e["message"].as_str().unwrap().contains("number")),
        "{body:#}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e["pointer"] == "" && e["message"].as_str().unwrap().contains("\"b\"")),
        "{body:#}"
    );
    let below_minimum = app.call_tool("fx", "slow", &json!({ "ms": -5 })).await;
    assert_eq!(
        below_minimum.json::<Value>().await.unwrap()["details"]["errors"][0]["pointer"],
        "/ms"
    );
    // Sessions open on first use: no server process means no call reached it.
    assert_eq!(processes_mentioning(&marker), 0);

    let valid = app.call_tool("fx", "add", &json!({ "a": 1, "b": 2 })).await;
    assert_eq!(valid.status(), 200);
    assert_eq!(processes_mentioning(&marker), 1);
}

#[tokio::test]
async fn a_dead_server_fails_fast_with_retry_after_until_it_is_back() {
    let app = TestApp::spawn().await;
    let fixture = FixtureHttp::start(None).await;
    let addr = fixture.addr();
    assert_eq!(
        app.register(&json!({ "name": "web", "transport": fixture.transport() }))
            .await
            .status(),
        201
    );
    drop(fixture);
    let args = json!({ "message": "x" });

    let first = app.call_tool("web", "echo", &args).await;
    assert_eq!(first.status(), 502);
    assert_eq!(
        first.json::<Value>().await.unwrap()["code"],
        "upstream_unreachable"
    );
    let second = app.call_tool("web", "echo", &args).await;
    assert_eq!(second.status(), 503);
    let retry_after: u64 = second.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after));
    assert_eq!(
        second.json::<Value>().await.unwrap()["code"],
        "upstream_unavailable"
    );

    let _back = FixtureHttp::start_on(addr, None).await;
    eventually("calls reach the server again", async || {
        let status = app.call_tool("web", "echo", &args).await.status().as_u16();
        assert!(
            status == 200 || status == 503,
            "while the breaker is open, calls fail fast: {status}"
        );
        if status == 200 {
            Ok(())
        } else {
            Err(status)
        }
    })
    .await;
}

#[tokio::test]
async fn callers_of_a_hanging_server_do_not_queue_behind_its_timeout() {
    let app = TestApp::spawn_with(|settings| {
        settings.mcp_connect_timeout = std::time::Duration::from_secs(2)
    })
    .await;
    let fixture = FixtureHttp::start(None).await;
    let gate = mcpo_test_support::gate::TcpGate::start(fixture.addr()).await;
    let url = format!("http://{}/mcp", gate.addr);
    let registered = app
        .register(
            &json!({ "name": "wedged", "transport": { "type": "streamable_http", "url": url } }),
        )
        .await;
    assert_eq!(registered.status(), 201);
    gate.hang();

    let calls = (0..5).map(|_| async {
        app.call_tool("wedged", "echo", &json!({ "message": "x" }))
            .await
            .status()
            .as_u16()
    });
    let mut statuses = futures::future::join_all(calls).await;
    statuses.sort();
    assert_eq!(
        statuses,
        [503, 503, 503, 503, 504],
        "one caller waits out the connect timeout, the others fail fast"
    );
}
