//! What a registrant must not be able to make MCPO do, and what MCPO must
//! never show: connections to non-public addresses (directly or through
//! redirects), commands off the stdio allowlist, and transport secrets
//! (env and header values) in answers, events, the database or the log.

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcpo_core::egress::{EgressPolicy, StdioPolicy};
use mcpo_core::secrets::SecretKeyring;
use mcpo_test_support::database::TestDatabase;
use mcpo_test_support::{
    answer, closed_port, eventually, eventually_within, FixtureHttp, TestApp, SERVICES,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{assert_not_stored, stdio_fixture, MCPO};

fn http_transport(url: &str) -> Value {
    json!({ "type": "streamable_http", "url": url })
}

// ---------------------------------------------------------------------------
// SSRF
// ---------------------------------------------------------------------------

#[tokio::test]
async fn urls_of_non_public_addresses_are_refused_and_nothing_is_stored() {
    // A live server on loopback: the only thing between a registrant and it
    // is the egress policy.
    let fixture = FixtureHttp::start(None).await;
    let port = fixture.addr().port();
    let app = TestApp::spawn_with(|settings| settings.egress = EgressPolicy::default()).await;

    let cases = [
        ("loop4", format!("http://127.0.0.1:{port}/mcp"), "loopback"),
        (
            "metadata",
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "link-local",
        ),
        ("loop6", format!("http://[::1]:{port}/mcp"), "loopback"),
        (
            "localhost",
            format!("http://localhost:{port}/mcp"),
            "loopback",
        ),
        // `url` reads a bare number as an IPv4 address: 127.0.0.1.
        ("decimal", "http://2130706433/".to_owned(), "loopback"),
        ("hex", format!("http://0x7f.1:{port}/mcp"), "loopback"),
        (
            "mapped",
            "http://[::ffff:169.254.169.254]/latest/meta-data/".to_owned(),
            "link-local",
        ),
        ("zero", format!("http://0.0.0.0:{port}/mcp"), "unspecified"),
        ("private", "http://10.1.2.3/mcp".to_owned(), "private"),
    ];
    for (name, url, category) in &cases {
        let (status, body) = answer(
            app.register(&json!({ "name": name, "transport": http_transport(url) }))
                .await,
        )
        .await;
        assert_eq!(status, 403, "{url}: {body:#}");
        assert_eq!(body["code"], "destination_not_allowed", "{url}: {body:#}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("({category}")),
            "{url}: the message names the category `{category}`: {message}"
        );
        assert!(message.contains("MCPO_EGRESS_ALLOW"), "{url}: {message}");
        assert_not_stored(&app, name).await;
    }
    let (_, body) = answer(
        app.register(
            &json!({ "name": "decimal", "transport": http_transport("http://2130706433/") }),
        )
        .await,
    )
    .await;
    assert!(
        body["message"].as_str().unwrap().contains("127.0.0.1"),
        "the message shows the address the URL means: {body:#}"
    );

    for url in [
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
    ] {
        let (status, body) = answer(
            app.register(&json!({ "name": "scheme", "transport": http_transport(url) }))
                .await,
        )
        .await;
        assert!((400..500).contains(&status), "{url}: {status} {body:#}");
        assert!(
            body["code"] == "invalid_request" || body["code"] == "destination_not_allowed",
            "{url}: {body:#}"
        );
        assert_not_stored(&app, "scheme").await;
    }
}

/// A server on 127.0.0.1 that answers every request with a 307 to
/// `location`, counting the requests it got.
async fn redirector(location: &str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let location = location.to_owned();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            let location = location.clone();
            tokio::spawn(async move {
                if read_request(&mut socket).await.is_none() {
                    return;
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let response = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (format!("http://{addr}/mcp"), hits)
}

/// Reads one request (head and `Content-Length` body) so closing the socket
/// afterwards does not reset the connection under the client.
async fn read_request(socket: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Some(buf)
}

#[tokio::test]
async fn redirects_to_non_public_addresses_are_refused() {
    // Loopback's 127.0.0.1 is allowed, so the first hop is made; where it
    // redirects to is not.
    let app = TestApp::spawn_with(|settings| {
        settings.egress = EgressPolicy::parse("127.0.0.1/32").unwrap();
    })
    .await;

    // The allowlist works: the fixture on 127.0.0.1 registers.
    let fixture = FixtureHttp::start(None).await;
    let (status, body) = answer(
        app.register(&json!({ "name": "allowed", "transport": fixture.transport() }))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body:#}");

    for (name, location, category) in [
        ("to-metadata", "http://169.254.169.254/mcp", "link-local"),
        ("to-loopback6", "http://[::1]:1/mcp", "loopback"),
    ] {
        let (url, hits) = redirector(location).await;
        let (status, body) = answer(
            app.register(&json!({ "name": name, "transport": http_transport(&url) }))
                .await,
        )
        .await;
        assert_eq!(status, 403, "{location}: {body:#}");
        assert_eq!(
            body["code"], "destination_not_allowed",
            "{location}: {body:#}"
        );
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(category), "{location}: {message}");
        assert!(
            hits.load(Ordering::SeqCst) >= 1,
            "the first hop was made: the refusal is the redirect's"
        );
        assert_not_stored(&app, name).await;
    }
}

// ---------------------------------------------------------------------------
// Stdio allowlist
// ---------------------------------------------------------------------------

fn stdio_body(name: &str, command: &str, args: &[&str], env: Value) -> Value {
    json!({
        "name": name,
        "transport": { "type": "stdio", "command": command, "args": args, "env": env },
    })
}

#[tokio::test]
async fn only_allowlisted_commands_run() {
    let app = TestApp::spawn_with(|settings| {
        settings.stdio =
            StdioPolicy::allowing([(MCPO.to_owned(), vec!["fixture".into(), "stdio".into()])]);
    })
    .await;
    let (status, body) = answer(app.register(&stdio_fixture("fx", None)).await).await;
    assert_eq!(status, 201, "{body:#}");

    let pwned = std::env::temp_dir().join(format!("pwned-{}", uuid::Uuid::new_v4().simple()));
    let touch = format!("touch {}", pwned.display());
    let refused = [
        (
            "shell",
            stdio_body("shell", "/bin/sh", &["-c", &touch], json!({})),
            "/bin/sh",
        ),
        // The allowed binary, but not with the allowed arguments.
        ("up", stdio_body("up", MCPO, &["up"], json!({})), MCPO),
        (
            "short",
            stdio_body("short", MCPO, &["fixture"], json!({})),
            MCPO,
        ),
        (
            "preload",
            stdio_body(
                "preload",
                MCPO,
                &["fixture", "stdio"],
                json!({ "LD_PRELOAD": "/tmp/x.so" }),
            ),
            "LD_PRELOAD",
        ),
        (
            "preload-lower",
            stdio_body(
                "preload-lower",
                MCPO,
                &["fixture", "stdio"],
                json!({ "ld_preload": "/tmp/x.so" }),
            ),
            "ld_preload",
        ),
        (
            "path",
            stdio_body(
                "path",
                MCPO,
                &["fixture", "stdio"],
                json!({ "PATH": "/tmp/evil" }),
            ),
            "PATH",
        ),
    ];
    for (name, body, named) in &refused {
        let (status, answer) = answer(app.register(body).await).await;
        assert_eq!(status, 403, "{name}: {answer:#}");
        assert_eq!(answer["code"], "command_not_allowed", "{name}: {answer:#}");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains(named),
            "{name}: names `{named}`: {message}"
        );
        assert_not_stored(&app, name).await;
    }

    // Changing an allowed service into a shell is refused the same way.
    let response = app
        .patch_service("fx", &json!({ "transport": refused[0].1["transport"] }))
        .await;
    let (status, body) = answer(response).await;
    assert_eq!(status, 403, "{body:#}");
    assert_eq!(body["code"], "command_not_allowed", "{body:#}");
    let (_, fx) = answer(app.registry_get(&format!("{SERVICES}/fx")).await).await;
    assert_eq!(fx["transport"]["command"], MCPO, "{fx:#}");
    assert_eq!(fx["revision"], 1, "{fx:#}");

    // Import goes through the same check.
    let response = app
        .import(&json!({ "mcpServers": {
            "evil": { "command": "/bin/sh", "args": ["-c", touch] },
        }}))
        .await;
    let (status, report) = answer(response).await;
    assert_eq!(status, 200, "{report:#}");
    assert_eq!(report["registered"], 0, "{report:#}");
    assert_eq!(report["failed"], 1, "{report:#}");
    assert_eq!(report["entries"][0]["name"], "evil");
    assert_eq!(report["entries"][0]["outcome"], "failed");
    assert_eq!(
        report["entries"][0]["code"], "command_not_allowed",
        "{report:#}"
    );
    assert_not_stored(&app, "evil").await;

    assert!(
        !pwned.exists(),
        "a refused command ran: {} exists",
        pwned.display()
    );
}

// ---------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------

/// Names a stdio server may get from MCPO's environment (see `spawn_stdio`).
const INHERITED_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
];

/// The parent pid of a process, from `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The environment a process started with.
fn environ(pid: u32) -> Option<Vec<(String, String)>> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let entry = String::from_utf8_lossy(entry);
                let (name, value) = entry.split_once('=').unwrap_or((&entry, ""));
                (name.to_owned(), value.to_owned())
            })
            .collect(),
    )
}

/// The environments of the children of `parent` that hold `NAME=value`.
fn children_with_env(parent: u32, name: &str, value: &str) -> Vec<(u32, Vec<(String, String)>)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| parent_of(*pid) == Some(parent))
        .filter_map(|pid| Some((pid, environ(pid)?)))
        .filter(|(_, env)| env.iter().any(|(n, v)| n == name && v == value))
        .collect()
}

/// The stdio server got its secret in clear (so the sealed value opened)
/// and nothing of MCPO's own environment beyond the basics.
fn assert_server_environment(parent: u32, name: &str, value: &str) {
    let servers = children_with_env(parent, name, value);
    assert!(
        !servers.is_empty(),
        "no child of {parent} runs with {name} set to the registered value"
    );
    for (pid, env) in servers {
        let unexpected: Vec<&String> = env
            .iter()
            .map(|(n, _)| n)
            .filter(|n| *n != name && !INHERITED_ENV.contains(&n.as_str()))
            .collect();
        assert!(
            unexpected.is_empty(),
            "stdio server {pid} inherited {unexpected:?} from MCPO"
        );
    }
}

/// Every table's rows as text, to search for what must not be there.
async fn database_dump(app: &TestApp) -> Vec<(String, String)> {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Dump {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        text: Option<String>,
    }
    let mut conn = app.deps.pool.get().await.unwrap();
    let mut dumps = Vec::new();
    for table in [
        "mcp_services",
        "tools",
        "tool_schemas",
        "event_outbox",
        "openapi_documents",
        "audit_log",
    ] {
        let dump: Dump = diesel::sql_query(format!(
            "SELECT string_agg(t::text, E'\\n') AS text FROM {table} t"
        ))
        .get_result(&mut conn)
        .await
        .unwrap();
        dumps.push((table.to_owned(), dump.text.unwrap_or_default()));
    }
    dumps
}

/// The stored transport of a service, as JSON.
async fn stored_transport(app: &TestApp, name: &str) -> Value {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        transport: String,
    }
    let mut conn = app.deps.pool.get().await.unwrap();
    let row: Row =
        diesel::sql_query("SELECT transport::text AS transport FROM mcp_services WHERE name = $1")
            .bind::<diesel::sql_types::Text, _>(name)
            .get_result(&mut conn)
            .await
            .unwrap();
    serde_json::from_str(&row.transport).unwrap()
}

fn assert_hidden(place: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "a secret shows in {place}: {text}");
    }
}

/// A TCP proxy to `upstream` that keeps what clients sent, one entry per
/// connection: shows what MCPO really puts on the wire.
async fn recording_proxy(upstream: SocketAddr) -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let record = sent.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let slot = {
                let mut all = record.lock().unwrap();
                all.push(Vec::new());
                all.len() - 1
            };
            let record = record.clone();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let mut chunk = [0u8; 8192];
                loop {
                    match client_read.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            record.lock().unwrap()[slot].extend_from_slice(&chunk[..n]);
                            if server_write.write_all(&chunk[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = server_write.shutdown().await;
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                let _ = client_write.shutdown().await;
            });
        }
    });
    (format!("http://{addr}/mcp"), sent)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_and_never_shown() {
    let app = TestApp::spawn().await;
    let fixture = FixtureHttp::start(None).await;
    let (proxy_url, on_the_wire) = recording_proxy(fixture.addr()).await;
    let env_secret = format!("sk-test-{}", uuid::Uuid::new_v4().simple());
    let header_secret = format!("hdr-test-{}", uuid::Uuid::new_v4().simple());
    let secrets = [env_secret.as_str(), header_secret.as_str()];

    let mut local = stdio_fixture("local", None);
    local["transport"]["env"] = json!({ "API_TOKEN": env_secret });
    let remote = json!({
        "name": "remote",
        "transport": {
            "type": "streamable_http",
            "url": proxy_url,
            "headers": { "Authorization": format!("Bearer {header_secret}") },
        },
    });
    for body in [&local, &remote] {
        let response = app.register(body).await;
        assert_eq!(response.status(), 201);
        assert_hidden("the POST answer", &response.text().await.unwrap(), &secrets);
    }

    // GET shows the names, not the values.
    let (_, got_local) = answer(app.registry_get(&format!("{SERVICES}/local")).await).await;
    assert_eq!(
        got_local["transport"]["env"],
        json!({ "API_TOKEN": "[redacted]" })
    );
    let (_, got_remote) = answer(app.registry_get(&format!("{SERVICES}/remote")).await).await;
    assert_eq!(
        got_remote["transport"]["headers"],
        json!({ "Authorization": "[redacted]" })
    );

    // Sealed at rest, each value on its own.
    let stored = stored_transport(&app, "local").await;
    let sealed_env = stored["env"]["API_TOKEN"].as_str().unwrap().to_owned();
    assert!(SecretKeyring::is_sealed(&sealed_env), "{stored:#}");
    assert!(sealed_env.starts_with("mcpo:v1:"), "{stored:#}");
    let stored = stored_transport(&app, "remote").await;
    let sealed_header = stored["headers"]["Authorization"].as_str().unwrap();
    assert!(sealed_header.starts_with("mcpo:v1:"), "{stored:#}");

    // The tools work through the executor, which opens the sealed values:
    // the server gets them in clear.
    for service in ["local", "remote"] {
        let response = app
            .call_tool(service, "echo", &json!({ "message": "hi" }))
            .await;
        assert_eq!(response.status(), 200, "{service}");
        assert_eq!(response.json::<Value>().await.unwrap(), json!("hi"));
    }
    assert_server_environment(std::process::id(), "API_TOKEN", &env_secret);
    {
        let connections = on_the_wire.lock().unwrap();
        let used: Vec<&Vec<u8>> = connections.iter().filter(|c| !c.is_empty()).collect();
        // Registration's connection and the executor's.
        assert!(used.len() >= 2, "{} connections", used.len());
        for sent in used {
            let text = String::from_utf8_lossy(sent);
            assert!(
                contains(sent, &format!("Bearer {header_secret}")),
                "every connection carries the header in clear: {text}"
            );
            assert!(!contains(sent, "mcpo:v1:"), "{text}");
            assert!(!contains(sent, "[redacted]"), "{text}");
        }
    }

    // None of what callers can read shows a secret.
    for path in [
        format!("{SERVICES}/local"),
        format!("{SERVICES}/remote"),
        SERVICES.to_owned(),
        format!("{SERVICES}/local/tools"),
        format!("{SERVICES}/remote/tools"),
        format!("{SERVICES}:export"),
        "/api/v1/mcpo/audit".to_owned(),
    ] {
        let response = app.registry_get(&path).await;
        assert_eq!(response.status(), 200, "{path}");
        let text = response.text().await.unwrap();
        assert_hidden(&path, &text, &secrets);
        assert!(
            !text.contains("mcpo:v1:"),
            "{path} shows a sealed value: {text}"
        );
    }
    let doc = app
        .wait_for_openapi(|doc| {
            doc["paths"].get("/tools/local/echo").is_some()
                && doc["paths"].get("/tools/remote/echo").is_some()
        })
        .await;
    assert_hidden("the published document", &doc.to_string(), &secrets);

    // Nor the events (once both registrations went out) nor the database.
    let bus = mcpo_core::events::EventBus::connect(&app.direct_nats())
        .await
        .unwrap();
    let events = eventually("both registrations are on NATS", async || {
        let events = bus.stored_events().await.unwrap();
        let text = serde_json::to_string(&events).unwrap();
        if text.contains("\"service_name\":\"local\"")
            && text.contains("\"service_name\":\"remote\"")
        {
            Ok(text)
        } else {
            Err(text)
        }
    })
    .await;
    assert_hidden("the events on NATS", &events, &secrets);
    for (table, text) in database_dump(&app).await {
        assert_hidden(&format!("table {table}"), &text, &secrets);
    }

    // PATCH with the transport as GET showed it: the placeholders keep
    // what is stored.
    for (name, got) in [("local", &got_local), ("remote", &got_remote)] {
        let response = app
            .patch_service(
                name,
                &json!({ "transport": got["transport"], "description": "edited" }),
            )
            .await;
        let (status, body) = answer(response).await;
        assert_eq!(status, 200, "{name}: {body:#}");
        assert_eq!(body["description"], "edited");
        assert_eq!(body["transport"], got["transport"], "{name}");
        assert_hidden("the PATCH answer", &body.to_string(), &secrets);
    }
    let stored = stored_transport(&app, "local").await;
    assert_eq!(
        stored["env"]["API_TOKEN"],
        sealed_env.as_str(),
        "kept as stored"
    );
    for service in ["local", "remote"] {
        let response = app
            .call_tool(service, "echo", &json!({ "message": "again" }))
            .await;
        assert_eq!(response.status(), 200, "{service}");
    }

    // Only admins export the secrets, and that is audited.
    let writer = app.client_with(&["registry:write"]);
    let (status, body) = answer(
        writer
            .get(format!(
                "{}{SERVICES}:export?include_secrets=true",
                app.registry_url
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "{body:#}");
    assert_eq!(body["code"], "permission_denied", "{body:#}");
    let (status, exported) = answer(
        app.registry_get(&format!("{SERVICES}:export?include_secrets=true"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{exported:#}");
    // An admin's export with secrets holds the real values.
    assert_eq!(
        exported["mcpServers"]["local"]["env"]["API_TOKEN"],
        env_secret.as_str(),
        "{exported:#}"
    );
    assert_eq!(
        exported["mcpServers"]["remote"]["headers"]["Authorization"],
        format!("Bearer {header_secret}").as_str(),
        "{exported:#}"
    );
    let (_, audit) = answer(app.registry_get("/api/v1/mcpo/audit").await).await;
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "services.exported_with_secrets"),
        "{audit:#}"
    );

    // The placeholder for a key that has no stored value, and anything
    // shaped like a sealed value (such as another service's), are refused.
    let stdio = |env: Value| {
        let mut transport = got_local["transport"].clone();
        transport["env"] = env;
        transport
    };
    for transport in [
        stdio(json!({ "API_TOKEN": "[redacted]", "NEW_TOKEN": "[redacted]" })),
        stdio(json!({ "API_TOKEN": "mcpo:v1:k1:AAAA" })),
        stdio(json!({ "API_TOKEN": sealed_env })),
    ] {
        let response = app
            .patch_service("local", &json!({ "transport": transport }))
            .await;
        let (status, body) = answer(response).await;
        assert_eq!(status, 422, "{transport}: {body:#}");
        assert_eq!(body["code"], "invalid_request", "{body:#}");
    }
    for (name, env) in [
        ("placeholder", json!({ "API_TOKEN": "[redacted]" })),
        ("copied", json!({ "API_TOKEN": sealed_env })),
    ] {
        let mut body = stdio_fixture(name, None);
        body["transport"]["env"] = env;
        let (status, answer) = answer(app.register(&body).await).await;
        assert_eq!(status, 422, "{name}: {answer:#}");
        assert_eq!(answer["code"], "invalid_request", "{answer:#}");
        assert_not_stored(&app, name).await;
    }
    let (_, local_now) = answer(app.registry_get(&format!("{SERVICES}/local")).await).await;
    assert_eq!(local_now["revision"], 2, "{local_now:#}");
}

#[tokio::test]
async fn placeholders_of_an_exported_file_are_not_imported_as_secrets() {
    let app = TestApp::spawn().await;
    let mut local = stdio_fixture("local", None);
    local["transport"]["env"] = json!({ "API_TOKEN": "sk-test-placeholder" });
    assert_eq!(app.register(&local).await.status(), 201);
    let (status, exported) = answer(app.registry_get(&format!("{SERVICES}:export")).await).await;
    assert_eq!(status, 200, "{exported:#}");

    // The file as exported, under another name: its env value is the
    // placeholder, which must not become the new service's token.
    let file = json!({ "mcpServers": { "copy": exported["mcpServers"]["local"] } });
    let (status, report) = answer(app.import(&file).await).await;
    assert_eq!(status, 200, "{report:#}");
    // The placeholder of an exported file is refused, not stored as the secret.
    assert_eq!(report["entries"][0]["outcome"], "failed", "{report:#}");
    assert_eq!(
        report["entries"][0]["code"], "invalid_request",
        "{report:#}"
    );
    assert_not_stored(&app, "copy").await;
}

// ---------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------

/// `mcpo up`, killed (and its data directory removed) on drop.
struct Running(std::process::Child, std::path::PathBuf);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

type Output = Arc<Mutex<Vec<String>>>;

/// Collects every line of `source` into `output`, tagged with `tag`.
fn collect(
    source: impl std::io::Read + Send + 'static,
    tag: &'static str,
    output: Output,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(source).split(b'\n') {
            let Ok(line) = line else { break };
            let line = format!("{tag}: {}", String::from_utf8_lossy(&line));
            output.lock().unwrap().push(line);
        }
    })
}

async fn delete_stream(id: &str) {
    let nats = mcpo_core::config::NatsSettings {
        url: mcpo_test_support::app::nats_url(),
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
async fn no_secret_reaches_any_log_line_even_at_trace_level() {
    let database = TestDatabase::create().await;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let fixture = FixtureHttp::start(None).await;
    let env_secret = format!("sk-test-{}", uuid::Uuid::new_v4().simple());
    let header_secret = format!("hdr-test-{}", uuid::Uuid::new_v4().simple());
    let key = SecretKeyring::generate_key();

    let data_home = std::env::temp_dir().join(format!("mcpo-security-{id}"));
    let mut child = Command::new(MCPO)
        .args(["up", "--demo"])
        .env("RUST_LOG", "trace")
        .env("MCPO_LOG_FORMAT", "json")
        .env("MCPO_AUTH", "disabled")
        .env("XDG_DATA_HOME", &data_home)
        .env("MCPO_SECRET_KEYS", format!("k1:{key}"))
        .env("MCPO_EGRESS_ALLOW", "127.0.0.1/32")
        .env("MCPO_STDIO_ALLOWED_COMMANDS", "*")
        .env(
            "DATABASE_URL",
            secrecy::ExposeSecret::expose_secret(&database.url),
        )
        .env("NATS_URL", mcpo_test_support::app::nats_url())
        .env("MCPO_NATS_PREFIX", format!("t{id}"))
        .env("MCPO_NATS_STREAM", format!("T{id}"))
        .env("MCPO_REGISTRY_ADDR", "127.0.0.1:0")
        .env("MCPO_EXECUTOR_ADDR", "127.0.0.1:0")
        .env("MCPO_PUBLISHER_ADDR", "127.0.0.1:0")
        .env("MCPO_HTTP_WORKERS", "1")
        // The status monitor's checks (and failures) are logged too.
        .env("MCPO_STATUS_INTERVAL_MS", "200")
        .env_remove("MCPO_EXECUTOR_PUBLIC_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output: Output = Arc::default();
    let readers = [
        collect(child.stdout.take().unwrap(), "stdout", output.clone()),
        collect(child.stderr.take().unwrap(), "stderr", output.clone()),
    ];
    let mut running = Running(child, data_home);
    let pid = running.0.id();

    // The banner names the URLs once every service answers.
    let banner = |name: &str| {
        output.lock().unwrap().iter().find_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["stdout:", n, url] if *n == name => Some(url.to_string()),
                _ => None,
            }
        })
    };
    eventually_within(
        "mcpo up prints its URLs",
        Duration::from_secs(60),
        async || {
            if let Some(status) = running.0.try_wait().unwrap() {
                panic!(
                    "mcpo up exited with {status}: {:#?}",
                    output
                        .lock()
                        .unwrap()
                        .iter()
                        .rev()
                        .take(30)
                        .collect::<Vec<_>>()
                );
            }
            match (banner("registry"), banner("executor"), banner("publisher")) {
                (Some(_), Some(_), Some(_)) => Ok(()),
                _ => Err(output.lock().unwrap().len()),
            }
        },
    )
    .await;
    let registry = banner("registry").unwrap();
    let executor = banner("executor")
        .unwrap()
        .trim_end_matches("/tools/{service}/{tool}")
        .to_owned();
    let publisher = banner("publisher").unwrap();
    let http = reqwest::Client::new();

    let mut local = stdio_fixture("local", None);
    local["transport"]["env"] = json!({ "API_TOKEN": env_secret });
    let remote = json!({
        "name": "remote",
        "transport": {
            "type": "streamable_http",
            "url": fixture.url,
            "headers": { "Authorization": format!("Bearer {header_secret}") },
        },
    });
    for body in [&local, &remote] {
        let (status, body) = answer(http.post(&registry).json(body).send().await.unwrap()).await;
        assert_eq!(status, 201, "{body:#}");
    }
    for service in ["local", "remote"] {
        let response = http
            .post(format!("{executor}/tools/{service}/echo"))
            .json(&json!({ "message": "hi" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{service}");
    }
    // The server got its own env and the basics, nothing of MCPO's (which
    // holds the database URL and the secret keys).
    assert_server_environment(pid, "API_TOKEN", &env_secret);

    // Reads, exports and a round trip through PATCH.
    for path in [
        "/local",
        "/remote",
        "",
        ":export",
        ":export?include_secrets=true",
    ] {
        let response = http.get(format!("{registry}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    for name in ["local", "remote"] {
        let (_, got) = answer(http.get(format!("{registry}/{name}")).send().await.unwrap()).await;
        let response = http
            .patch(format!("{registry}/{name}"))
            .json(&json!({ "transport": got["transport"], "description": "edited" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
    }
    // Failures log more than successes: refusals, unreachable servers and
    // commands that do not start, each carrying a secret.
    let closed = closed_port();
    let with_header = |name: &str, url: String| {
        json!({ "name": name, "transport": {
            "type": "streamable_http",
            "url": url,
            "headers": { "Authorization": format!("Bearer {header_secret}") },
        }})
    };
    let failing = [
        (
            stdio_body(
                "preload",
                MCPO,
                &["fixture", "stdio"],
                json!({ "API_TOKEN": env_secret, "LD_PRELOAD": "/tmp/x.so" }),
            ),
            403,
        ),
        (
            stdio_body(
                "missing",
                "/nonexistent/mcp-server",
                &[],
                json!({ "API_TOKEN": env_secret }),
            ),
            502,
        ),
        (with_header("private", "http://10.1.2.3/mcp".into()), 403),
        (
            with_header("down", format!("http://127.0.0.1:{closed}/mcp")),
            502,
        ),
    ];
    for (body, expected) in &failing {
        let (status, answer) = answer(http.post(&registry).json(body).send().await.unwrap()).await;
        assert_eq!(status, *expected, "{answer:#}");
    }
    // The events went out and the document was published, so their logging
    // happened too.
    eventually("the services are published", async || {
        let doc: Value = http
            .get(&publisher)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if doc["paths"].get("/tools/local/echo").is_some()
            && doc["paths"].get("/tools/remote/echo").is_some()
        {
            Ok(())
        } else {
            Err(doc)
        }
    })
    .await;

    // The HTTP server goes away: calls fail and the monitor notices, both
    // logging what went wrong.
    drop(fixture);
    let response = http
        .post(format!("{executor}/tools/remote/echo"))
        .json(&json!({ "message": "hi" }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_server_error(), "{}", response.status());
    eventually("the monitor sees the server gone", async || {
        let (_, got) = answer(http.get(format!("{registry}/remote")).send().await.unwrap()).await;
        if got["status"] == "unreachable" {
            Ok(())
        } else {
            Err(got)
        }
    })
    .await;

    // SIGTERM: a clean stop flushes everything.
    let signalled = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let status = tokio::task::spawn_blocking(move || {
        let status = running.0.wait().unwrap();
        drop(running);
        status
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(0));
    for reader in readers {
        reader.join().unwrap();
    }

    let lines = std::mem::take(&mut *output.lock().unwrap());
    // Trace level was on, and the registrations were logged: the search
    // below looks at real output.
    assert!(
        lines.iter().any(|l| l.contains("\"level\":\"TRACE\"")),
        "RUST_LOG=trace took effect"
    );
    assert!(
        lines.iter().any(|l| l.contains("service registered")),
        "the registrations were logged"
    );
    // Each secret as text, and as the byte list some libraries log
    // (tokio-postgres logs query parameters as `[115, 107, ...]`).
    let forms: Vec<String> = [&env_secret, &header_secret, &key]
        .into_iter()
        .flat_map(|secret| {
            let bytes: Vec<String> = secret.bytes().map(|b| b.to_string()).collect();
            [secret.clone(), bytes.join(", ")]
        })
        .collect();
    let leaks: Vec<&String> = lines
        .iter()
        .filter(|line| forms.iter().any(|form| line.contains(form.as_str())))
        .collect();
    assert!(
        leaks.is_empty(),
        "{} of {} log lines show a secret:\n{}",
        leaks.len(),
        lines.len(),
        leaks
            .iter()
            .map(|l| l.chars().take(2000).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    );
    delete_stream(&id).await;
}

/// A stored secret never goes to a new destination: `[redacted]` keeps the
/// stored value only for the same URL, so a writer cannot move a service to
/// a server of theirs and have MCPO send it the stored header.
#[tokio::test]
async fn a_redacted_secret_is_not_carried_to_a_new_url() {
    let app = TestApp::spawn().await;
    let fixture = mcpo_test_support::FixtureHttp::start(None).await;
    let secret = format!("Bearer sk-{}", uuid::Uuid::new_v4().simple());
    let mut transport = fixture.transport();
    transport["headers"] = serde_json::json!({ "Authorization": secret });
    assert_eq!(
        app.register(&serde_json::json!({ "name": "web", "transport": transport }))
            .await
            .status(),
        201
    );
    let shown: serde_json::Value = app
        .registry_get("/api/v1/mcpo/services/web")
        .await
        .json()
        .await
        .unwrap();
    let elsewhere = mcpo_test_support::FixtureHttp::start(None).await;
    let mut moved = shown["transport"].clone();
    moved["url"] = elsewhere.transport()["url"].clone();
    let writer = app.client_with(&["registry:write"]);
    let answer = writer
        .patch(format!("{}/api/v1/mcpo/services/web", app.registry_url))
        .json(&serde_json::json!({ "transport": moved }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 422);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(
        body["details"]["field"], "transport.headers.Authorization",
        "{body}"
    );

    // Sent back to the same URL, the placeholder keeps the stored value.
    let kept = writer
        .patch(format!("{}/api/v1/mcpo/services/web", app.registry_url))
        .json(&serde_json::json!({ "transport": shown["transport"], "description": "same place" }))
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status(), 200);
    let exported: serde_json::Value = app
        .registry_get("/api/v1/mcpo/services:export?include_secrets=true")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        exported["mcpServers"]["web"]["headers"]["Authorization"],
        secret
    );
}
