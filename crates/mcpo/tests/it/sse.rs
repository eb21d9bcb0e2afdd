//! The legacy HTTP+SSE transport (MCP 2024-11-05): registration, calls and
//! refresh against server-everything's SSE mode and the fixture's, custom
//! headers, a dropped stream, servers that are not SSE MCP servers, secrets
//! and the egress policy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mcpo_core::domain::TransportConfig;
use mcpo_core::egress::EgressPolicy;
use mcpo_core::mcp::{ConnectPolicy, McpError, McpSession};
use mcpo_fixture::tools::ToolsSource;
use mcpo_fixture::SseOptions;
use mcpo_test_support::fixtures::{EverythingSse, FixtureSse};
use mcpo_test_support::gate::TcpGate;
use mcpo_test_support::{
    answer, closed_port, eventually, tool_names, FixtureHttp, TestApp, ToolsFile, SERVICES,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::{assert_everything_tools, assert_not_stored, refresh};

fn sse(url: &str) -> Value {
    json!({ "type": "sse", "url": url })
}

#[tokio::test]
async fn the_fixture_over_sse_registers_calls_and_refreshes() {
    let app = TestApp::spawn().await;
    let tools_file = ToolsFile::new(&["echo", "add", "fail", "slow"]);
    let fixture = FixtureSse::start(SseOptions {
        source: ToolsSource {
            file: Some(tools_file.path.clone()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;

    let (status, service) = answer(
        app.register(&json!({ "name": "fx-sse", "transport": fixture.transport() }))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{service:#}");
    assert_eq!(service["transport"]["type"], "sse");
    assert_eq!(service["status"], "active");
    assert_eq!(tool_names(&service), ["add", "echo", "fail", "slow"]);

    let echo = app
        .call_tool("fx-sse", "echo", &json!({ "message": "over sse" }))
        .await;
    assert_eq!(echo.status(), 200);
    assert_eq!(echo.json::<Value>().await.unwrap(), json!("over sse"));
    let add = app
        .call_tool("fx-sse", "add", &json!({ "a": 1.5, "b": 2 }))
        .await;
    assert_eq!(add.json::<Value>().await.unwrap(), json!({ "sum": 3.5 }));
    // Concurrent calls share the session; each answer finds its caller.
    let calls = (0..8).map(|i| {
        let app = &app;
        async move {
            let body: Value = app
                .call_tool("fx-sse", "echo", &json!({ "message": format!("call {i}") }))
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(body, json!(format!("call {i}")));
        }
    });
    futures::future::join_all(calls).await;

    assert_eq!(refresh(&app, "fx-sse").await["changed"], false);
    tools_file.set(&["echo", "add", "fail", "slow", "reverse"]);
    let changed = refresh(&app, "fx-sse").await;
    assert_eq!(changed["changed"], true, "{changed:#}");
    assert_eq!(
        tool_names(&changed["service"]),
        ["add", "echo", "fail", "reverse", "slow"]
    );
    let reversed = app
        .call_tool("fx-sse", "reverse", &json!({ "text": "abc" }))
        .await;
    assert_eq!(reversed.json::<Value>().await.unwrap(), json!("cba"));
}

#[tokio::test]
async fn server_everything_over_sse_registers_calls_and_refreshes() {
    let app = TestApp::spawn().await;
    let everything = EverythingSse::start().await;
    let (status, service) = answer(
        app.register(&json!({ "name": "everything-sse", "transport": everything.transport() }))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{service:#}");
    let names = assert_everything_tools(&service);

    let echo = app
        .call_tool(
            "everything-sse",
            "echo",
            &json!({ "message": "hi over sse" }),
        )
        .await;
    let (status, body) = answer(echo).await;
    assert_eq!(status, 200, "{body:#}");
    assert!(body.to_string().contains("hi over sse"), "{body}");

    let refreshed = refresh(&app, "everything-sse").await;
    assert_eq!(refreshed["changed"], false, "{refreshed:#}");
    assert_eq!(tool_names(&refreshed["service"]), names);

    // Imported from an mcpServers file as well.
    let file =
        json!({ "mcpServers": { "everything-import": { "type": "sse", "url": everything.url } } });
    let (status, report) = answer(app.import(&file).await).await;
    assert_eq!(status, 200, "{report:#}");
    assert_eq!(report["registered"], 1, "{report:#}");
}

#[tokio::test]
async fn custom_headers_reach_the_server_and_are_never_shown() {
    let app = TestApp::spawn().await;
    let secret = "s3cret-sse-key";
    let fixture = FixtureSse::requiring_header("x-api-key", secret).await;

    // Without the header the server refuses the stream: a clear error.
    let (status, body) = answer(
        app.register(&json!({ "name": "guarded", "transport": fixture.transport() }))
            .await,
    )
    .await;
    assert_eq!(status, 502, "{body:#}");
    assert_eq!(body["code"], "upstream_protocol_error", "{body:#}");
    assert!(
        body["message"].as_str().unwrap().contains("401"),
        "{body:#}"
    );
    assert_not_stored(&app, "guarded").await;

    // With it, both the GET and every POST carry it (the fixture refuses
    // either without it).
    let transport =
        json!({ "type": "sse", "url": fixture.url, "headers": { "X-Api-Key": secret } });
    let response = app
        .register(&json!({ "name": "guarded", "transport": transport }))
        .await;
    let text = response.text().await.unwrap();
    assert!(!text.contains(secret), "{text}");
    let service: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(service["transport"]["headers"]["X-Api-Key"], "[redacted]");
    let echo = app
        .call_tool("guarded", "echo", &json!({ "message": "let in" }))
        .await;
    assert_eq!(echo.json::<Value>().await.unwrap(), json!("let in"));
    assert_eq!(refresh(&app, "guarded").await["changed"], false);

    for path in [
        format!("{SERVICES}/guarded"),
        SERVICES.to_owned(),
        format!("{SERVICES}:export"),
    ] {
        let text = app.registry_get(&path).await.text().await.unwrap();
        assert!(!text.contains(secret), "{path}: {text}");
        assert!(text.contains("[redacted]"), "{path}: {text}");
    }
    let exported: Value = app
        .registry_get(&format!("{SERVICES}:export"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        exported["mcpServers"]["guarded"],
        json!({ "type": "sse", "url": fixture.url, "headers": { "X-Api-Key": "[redacted]" } })
    );

    // A PATCH sending the redacted value back keeps the real one.
    let patched = app
        .patch_service(
            "guarded",
            &json!({ "transport": exported["mcpServers"]["guarded"] }),
        )
        .await;
    let (status, body) = answer(patched).await;
    assert_eq!(status, 200, "{body:#}");
    let echo = app
        .call_tool("guarded", "echo", &json!({ "message": "still in" }))
        .await;
    assert_eq!(echo.json::<Value>().await.unwrap(), json!("still in"));
}

#[tokio::test]
async fn a_dropped_stream_fails_the_call_and_the_next_call_reconnects() {
    let app = TestApp::spawn().await;
    let fixture = FixtureSse::start(SseOptions::default()).await;
    let gate = TcpGate::start(fixture.addr()).await;
    let url = format!("http://{}/sse", gate.addr);
    let (status, body) = answer(
        app.register(&json!({ "name": "flaky", "transport": sse(&url) }))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body:#}");
    let hello = json!({ "message": "hello" });
    let echo = || app.call_tool("flaky", "echo", &hello);
    assert_eq!(echo().await.status(), 200);

    // The stream is cut and the server cannot be reached: a call fails at
    // once, as unreachable (never a hang or a timeout).
    gate.close();
    let (status, body) = answer(echo().await).await;
    assert_eq!(status, 502, "{body:#}");
    assert_eq!(body["code"], "upstream_unreachable", "{body:#}");

    // Back: the executor drops the closed session and opens a new one.
    gate.open();
    eventually("a call over a new SSE session succeeds", async || {
        let (status, body) = answer(echo().await).await;
        if status == 200 && body == json!("hello") {
            Ok(())
        } else {
            Err((status, body))
        }
    })
    .await;
}

fn loopback_policy() -> ConnectPolicy {
    ConnectPolicy {
        egress: EgressPolicy::parse("127.0.0.0/8").unwrap(),
        ..Default::default()
    }
}

/// The fixture behind a gate the test can close and open.
struct Gated {
    _fixture: FixtureSse,
    gate: TcpGate,
    /// The fixture's SSE URL through the gate.
    transport: TransportConfig,
    /// How many messages the fixture's sessions were handed.
    received: Arc<AtomicUsize>,
}

async fn gated_fixture(sticky_session: bool) -> Gated {
    let received = Arc::new(AtomicUsize::new(0));
    let fixture = FixtureSse::start(SseOptions {
        received: Some(received.clone()),
        sticky_session,
        ..Default::default()
    })
    .await;
    let gate = TcpGate::start(fixture.addr()).await;
    let transport = TransportConfig::Sse {
        url: format!("http://{}/sse", gate.addr),
        headers: Default::default(),
    };
    Gated {
        _fixture: fixture,
        gate,
        transport,
        received,
    }
}

/// Starts a call the server holds for ten minutes, with a longer timeout
/// (only the transport can end it early); returns once the server has it.
async fn hold_slow_call(
    session: &Arc<McpSession>,
    received: &AtomicUsize,
) -> JoinHandle<Result<impl std::fmt::Debug, McpError>> {
    let before = received.load(Ordering::SeqCst);
    let calling = session.clone();
    let call = tokio::spawn(async move {
        calling
            .call_tool(
                "slow",
                Some(json!({ "ms": 600_000 }).as_object().unwrap().clone()),
                Duration::from_secs(900),
                None,
                None,
            )
            .await
    });
    eventually("the server has the slow call", async || {
        let now = received.load(Ordering::SeqCst);
        if now > before {
            Ok(())
        } else {
            Err(now)
        }
    })
    .await;
    call
}

/// How a held call ends: through the transport, long before its own timeout.
async fn outcome<T>(call: JoinHandle<T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the pending call fails instead of waiting for its timeout")
        .unwrap()
}

#[tokio::test]
async fn a_dropped_stream_fails_pending_requests_and_closes_the_session() {
    // `_fixture` is bound, not ignored: the server lives as long as the test.
    let Gated {
        _fixture,
        gate,
        transport,
        received,
    } = gated_fixture(false).await;
    let policy = loopback_policy();
    let session = Arc::new(
        McpSession::connect(&transport, Duration::from_secs(10), "flaky", &policy)
            .await
            .unwrap(),
    );
    assert_eq!(session.list_tools().await.unwrap().len(), 4);
    let call = hold_slow_call(&session, &received).await;

    // While the stream is away the transport retries; the server is
    // unreachable, so it gives the session up and the call fails.
    gate.close();
    let failed = outcome(call).await;
    assert!(matches!(failed, Err(McpError::Closed)), "{failed:?}");
    eventually("the session is closed", async || {
        if session.is_closed() {
            Ok(())
        } else {
            Err("open")
        }
    })
    .await;

    // A server that answers again, but with a new session: the old one is
    // over as well (the transport does not pretend it is the same one).
    gate.open();
    let second = McpSession::connect(&transport, Duration::from_secs(10), "flaky", &policy)
        .await
        .unwrap();
    gate.close();
    gate.open();
    eventually(
        "the session is closed after the server moved it",
        async || {
            if second.is_closed() {
                Ok(())
            } else {
                Err("open")
            }
        },
    )
    .await;

    let third = McpSession::connect(&transport, Duration::from_secs(10), "flaky", &policy)
        .await
        .unwrap();
    assert_eq!(third.list_tools().await.unwrap().len(), 4);
    third.close().await;
}

#[tokio::test]
async fn a_server_that_keeps_the_session_gets_it_back_and_lost_answers_fail() {
    // `_fixture` is bound, not ignored: the server lives as long as the test.
    let Gated {
        _fixture,
        gate,
        transport,
        received,
    } = gated_fixture(true).await;
    let session = Arc::new(
        McpSession::connect(
            &transport,
            Duration::from_secs(10),
            "sticky",
            &loopback_policy(),
        )
        .await
        .unwrap(),
    );
    let call = hold_slow_call(&session, &received).await;

    // The stream drops and comes back to the same endpoint: the call in
    // flight fails (its answer could have been lost), the session goes on.
    gate.close();
    gate.open();
    let failed = outcome(call).await;
    match failed {
        Err(McpError::JsonRpc { message, .. }) => {
            assert!(message.contains("SSE stream"), "{message}")
        }
        other => panic!("expected the lost-answer error, got {other:?}"),
    }
    assert!(!session.is_closed());
    let echoed = session
        .call_tool(
            "echo",
            Some(
                json!({ "message": "same session" })
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            Duration::from_secs(30),
            None,
            None,
        )
        .await
        .unwrap();
    assert!(
        serde_json::to_string(&echoed)
            .unwrap()
            .contains("same session"),
        "{echoed:?}"
    );
}

/// A server that answers every request with `response` (a raw HTTP head and
/// body) and then holds the connection open.
async fn raw_server(response: String) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match socket.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let _ = socket.write_all(response.as_bytes()).await;
                // Held until the client goes.
                let _ = socket.read(&mut byte).await;
            });
        }
    });
    addr
}

fn event_stream(body: &str) -> String {
    format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n{body}")
}

#[tokio::test]
async fn servers_that_are_not_sse_servers_get_a_clear_error_and_nothing_is_stored() {
    let app = TestApp::spawn_with(|settings| {
        settings.mcp_connect_timeout = Duration::from_secs(2);
    })
    .await;
    let streamable = FixtureHttp::start(None).await;
    let fixture = FixtureSse::start(SseOptions::default()).await;
    let closed = closed_port();
    let silent = raw_server(event_stream(": nothing to say\n\n")).await;
    let ended = raw_server(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\ncontent-length: 19\r\n\r\nevent: ping\ndata:\n\n"
            .to_owned(),
    )
    .await;
    let elsewhere = raw_server(event_stream(
        "event: endpoint\ndata: http://169.254.169.254/message?sessionId=1\n\n",
    ))
    .await;

    let cases = [
        // A streamable HTTP server: rmcp's answers a GET without a session
        // with an error status.
        (
            "streamable",
            streamable.url.clone(),
            "upstream_protocol_error",
            "streamable_http",
        ),
        // The registry's health check: JSON, not a stream.
        (
            "json",
            format!("{}/healthz", app.registry_url),
            "upstream_protocol_error",
            "content-type application/json",
        ),
        (
            "not-found",
            fixture.url.replace("/sse", "/nothing-here"),
            "upstream_protocol_error",
            "HTTP 404",
        ),
        (
            "silent",
            format!("http://{silent}/sse"),
            "upstream_protocol_error",
            "no `endpoint` event",
        ),
        (
            "ended",
            format!("http://{ended}/sse"),
            "upstream_protocol_error",
            "without sending the `endpoint` event",
        ),
        (
            "elsewhere",
            format!("http://{elsewhere}/sse"),
            "upstream_protocol_error",
            "another origin",
        ),
        (
            "closed",
            format!("http://127.0.0.1:{closed}/sse"),
            "upstream_unreachable",
            "cannot reach",
        ),
    ];
    for (name, url, code, says) in cases {
        let (status, body) = answer(
            app.register(&json!({ "name": name, "transport": sse(&url) }))
                .await,
        )
        .await;
        assert_eq!(status, 502, "{name}: {body:#}");
        assert_eq!(body["code"], code, "{name}: {body:#}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(says), "{name}: `{says}` in {message}");
        assert_not_stored(&app, name).await;
    }
}

#[tokio::test]
async fn sse_urls_meet_the_egress_policy() {
    let fixture = FixtureSse::start(SseOptions::default()).await;
    let port = fixture.addr().port();
    let app = TestApp::spawn_with(|settings| settings.egress = EgressPolicy::default()).await;
    for (name, url, category) in [
        ("loop4", fixture.url.clone(), "loopback"),
        (
            "localhost",
            format!("http://localhost:{port}/sse"),
            "loopback",
        ),
        (
            "metadata",
            "http://169.254.169.254/sse".to_owned(),
            "link-local",
        ),
    ] {
        let (status, body) = answer(
            app.register(&json!({ "name": name, "transport": sse(&url) }))
                .await,
        )
        .await;
        assert_eq!(status, 403, "{url}: {body:#}");
        assert_eq!(body["code"], "destination_not_allowed", "{url}: {body:#}");
        assert!(
            body["message"].as_str().unwrap().contains(category),
            "{url}: {body:#}"
        );
        assert_not_stored(&app, name).await;
    }

    // A redirect from an allowed SSE URL to a forbidden one is refused too.
    let app = TestApp::spawn_with(|settings| {
        settings.egress = EgressPolicy::parse("127.0.0.1/32").unwrap();
    })
    .await;
    let redirect = raw_server(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://169.254.169.254/sse\r\ncontent-length: 0\r\n\r\n"
            .to_owned(),
    )
    .await;
    let (status, body) = answer(
        app.register(
            &json!({ "name": "bounce", "transport": sse(&format!("http://{redirect}/sse")) }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 403, "{body:#}");
    assert_eq!(body["code"], "destination_not_allowed", "{body:#}");
    assert_not_stored(&app, "bounce").await;
    // The allowlist works: the fixture on 127.0.0.1 registers.
    let (status, body) = answer(
        app.register(&json!({ "name": "allowed", "transport": fixture.transport() }))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body:#}");
}
