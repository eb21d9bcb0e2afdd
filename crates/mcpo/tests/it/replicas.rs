//! Executor replicas: each follows every change on its own, and one that
//! lost NATS for a while catches up with what changed meanwhile. Replicas
//! run in the test's process, and as processes of their own
//! (`mcpo serve executor`, as deployed).

use mcpo_core::config::Settings;
use mcpo_core::server::Dependencies;
use mcpo_test_support::gate::TcpGate;
use mcpo_test_support::{eventually, TestApp};
use serde_json::{json, Value};

use crate::stdio_fixture;

/// Another executor beside the app's, with its own pool, NATS connection,
/// routes and sessions: a replica behind the same load balancer.
async fn replica(settings: &Settings) -> (String, actix_web::dev::ServerHandle) {
    let mut settings = settings.clone();
    settings.executor_addr = ([127, 0, 0, 1], 0).into();
    let deps = Dependencies::connect(&settings, "mcpo-replica")
        .await
        .unwrap();
    let executor = mcpo_executor::build(&settings, deps).await.unwrap();
    let url = format!("http://{}", executor.addr());
    let handle = executor.handle();
    tokio::spawn(executor.run_until_stopped());
    (url, handle)
}

async fn echo(app: &TestApp, executor: &str, service: &str) -> (u16, Value) {
    echo_with(&app.http, executor, service).await
}

async fn wait_for_status(app: &TestApp, executor: &str, service: &str, status: u16) {
    wait_for_status_with(&app.http, executor, service, status).await
}

#[tokio::test]
async fn two_replicas_both_serve_and_both_stop_serving_a_change() {
    let app = TestApp::spawn().await;
    let (second, handle) = replica(&app.settings).await;
    let replicas = [app.executor_url.clone(), second];

    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    for executor in &replicas {
        assert_eq!(echo(&app, executor, "fx").await.0, 200);
    }

    let deleted = app.delete_service("fx").await;
    assert_eq!(deleted.status(), 204);
    for executor in &replicas {
        wait_for_status(&app, executor, "fx", 404).await;
    }

    // Registered again: both serve it again.
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    for executor in &replicas {
        wait_for_status(&app, executor, "fx", 200).await;
    }
    drop(handle.stop(false));
}

#[tokio::test]
async fn a_replica_that_lost_nats_catches_up_when_it_is_back() {
    let app = TestApp::spawn().await;
    let gate = TcpGate::start("127.0.0.1:4222".parse().unwrap()).await;
    let mut through_gate = app.settings.clone();
    through_gate.nats.url = format!("nats://{}", gate.addr);
    let (replica_url, handle) = replica(&through_gate).await;

    for name in ["gone", "stays"] {
        assert_eq!(app.register(&stdio_fixture(name, None)).await.status(), 201);
        assert_eq!(echo(&app, &replica_url, name).await.0, 200);
    }

    // While the replica is cut off, `gone` is deleted and `stays` disabled.
    gate.close();
    let deleted = app.delete_service("gone").await;
    assert_eq!(deleted.status(), 204);
    let disabled = app
        .patch_service("stays", &json!({ "enabled": false }))
        .await;
    assert_eq!(disabled.status(), 200);
    // The app's own executor, still connected, follows at once.
    wait_for_status(&app, &app.executor_url, "gone", 404).await;
    wait_for_status(&app, &app.executor_url, "stays", 503).await;
    // The events the replica missed are purged from the stream, so it
    // cannot replay them: only its reload from Postgres can tell it.
    async_nats::jetstream::new(async_nats::connect(&app.settings.nats.url).await.unwrap())
        .get_stream(&app.settings.nats.stream)
        .await
        .unwrap()
        .purge()
        .await
        .unwrap();

    gate.open();
    wait_for_status(&app, &replica_url, "gone", 404).await;
    let (status, body) = echo(&app, &replica_url, "stays").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "service_disabled");
    drop(handle.stop(false));
}

/// An executor replica as a process of its own (`mcpo serve executor`, what
/// the `mcpo-executor` binary runs) over the app's database and NATS stream;
/// killed when dropped.
struct ReplicaProcess {
    /// Taken by a test that waits for the process itself.
    child: Option<std::process::Child>,
    url: String,
}

impl ReplicaProcess {
    fn start(settings: &Settings, secret_keys: &str) -> ReplicaProcess {
        use std::io::BufRead;
        let mut child = std::process::Command::new(crate::MCPO)
            .args(["serve", "executor"])
            .env(
                "DATABASE_URL",
                secrecy::ExposeSecret::expose_secret(&settings.database.url),
            )
            .env("NATS_URL", &settings.nats.url)
            .env("MCPO_NATS_PREFIX", &settings.nats.subject_prefix)
            .env("MCPO_NATS_STREAM", &settings.nats.stream)
            .env("MCPO_EXECUTOR_ADDR", "127.0.0.1:0")
            .env("MCPO_HTTP_WORKERS", "1")
            .env("MCPO_DATABASE_POOL_SIZE", "2")
            .env("MCPO_AUTH", "disabled")
            .env("MCPO_STDIO_ALLOWED_COMMANDS", "*")
            .env("MCPO_EGRESS_ALLOW", "127.0.0.0/8")
            .env("MCPO_SECRET_KEYS", secret_keys)
            .env("MCPO_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The log line `executor listening` names the bound port.
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                let entry: Value = serde_json::from_str(&line).ok()?;
                let fields = entry.get("fields").unwrap_or(&entry);
                (fields["message"] == "executor listening")
                    .then(|| fields["addr"].as_str().map(str::to_owned))
                    .flatten()
            })
            .expect("the replica process logs its address");
        // Keep reading, so a full pipe never stops the replica.
        std::thread::spawn(move || lines.for_each(drop));
        ReplicaProcess {
            child: Some(child),
            url: format!("http://{addr}"),
        }
    }
}

impl Drop for ReplicaProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test]
async fn two_replica_processes_follow_changes_stop_cleanly_on_sigterm_and_leave_no_server_when_killed(
) {
    use crate::processes::terminate;
    let secret_keys = format!("test:{}", mcpo_core::secrets::SecretKeyring::generate_key());
    let keys = secret_keys.clone();
    let app = TestApp::spawn_with(move |settings| {
        settings.secret_keys = Some(mcpo_core::secrets::SecretKeyring::parse(&keys).unwrap());
    })
    .await;
    let mut first = ReplicaProcess::start(&app.settings, &secret_keys);
    let mut second = ReplicaProcess::start(&app.settings, &secret_keys);
    let plain = reqwest::Client::new();
    let tools = mcpo_test_support::ToolsFile::new(&["echo", "slow", "process_id"]);
    let fixture = stdio_fixture("fx", Some(&tools.path));

    // Registered through the registry: each process serves it.
    assert_eq!(app.register(&fixture).await.status(), 201);
    for replica in [&first, &second] {
        wait_for_status_with(&plain, &replica.url, "fx", 200).await;
    }

    // Deleted: each stops serving it.
    assert_eq!(app.delete_service("fx").await.status(), 204);
    for replica in [&first, &second] {
        wait_for_status_with(&plain, &replica.url, "fx", 404).await;
    }
    assert_eq!(app.register(&fixture).await.status(), 201);
    for replica in [&first, &second] {
        wait_for_status_with(&plain, &replica.url, "fx", 200).await;
    }

    // SIGTERM to one during a call: it takes no new connection, the call is
    // answered, the process exits 0 and its stdio server is gone.
    let server = server_pid(&plain, &first.url).await;
    let slow = tokio::spawn(
        plain
            .post(format!("{}/tools/fx/slow", first.url))
            .json(&json!({ "ms": 3000 }))
            .send(),
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut child = first.child.take().unwrap();
    terminate(child.id());
    eventually("the stopping replica refuses new connections", async || {
        // A client of its own: no kept-alive connection to reuse.
        match send_echo(&reqwest::Client::new(), &first.url, "fx").await {
            Err(e) if e.is_connect() => Ok(()),
            other => Err(format!("{:?}", other.map(|answer| answer.status()))),
        }
    })
    .await;
    assert!(!slow.is_finished(), "refused while the call was in flight");
    let answer = slow.await.unwrap().expect("the call in flight is answered");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap(), json!("slept 3000ms"));
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    wait_until_gone(server, "the stopped replica's stdio server").await;

    // The other replica went on; killed outright, it cannot stop its
    // server, which exits anyway when its stdin closes.
    assert_eq!(echo_with(&plain, &second.url, "fx").await.0, 200);
    let server = server_pid(&plain, &second.url).await;
    let mut child = second.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until_gone(server, "the killed replica's stdio server").await;
}

/// The pid of the fixture behind `executor`'s service `fx`, running.
async fn server_pid(client: &reqwest::Client, executor: &str) -> u32 {
    let pid = client
        .post(format!("{executor}/tools/fx/process_id"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["pid"]
        .as_u64()
        .unwrap() as u32;
    assert!(crate::processes::running(pid));
    pid
}

async fn wait_until_gone(pid: u32, what: &str) {
    eventually(&format!("{what} ({pid}) exits"), async || {
        if crate::processes::running(pid) {
            Err(pid)
        } else {
            Ok(())
        }
    })
    .await;
}

async fn send_echo(
    client: &reqwest::Client,
    executor: &str,
    service: &str,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{executor}/tools/{service}/echo"))
        .json(&json!({ "message": "hi" }))
        .send()
        .await
}

async fn echo_with(client: &reqwest::Client, executor: &str, service: &str) -> (u16, Value) {
    let answer = send_echo(client, executor, service).await.unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

async fn wait_for_status_with(
    client: &reqwest::Client,
    executor: &str,
    service: &str,
    status: u16,
) {
    eventually(
        &format!("{executor} answers {status} for {service}"),
        async || match echo_with(client, executor, service).await {
            (s, _) if s == status => Ok(()),
            other => Err(other),
        },
    )
    .await
}

#[tokio::test]
async fn calls_in_flight_finish_when_their_service_changes_or_is_deleted() {
    let app = TestApp::spawn().await;
    let tools = mcpo_test_support::ToolsFile::new(&["echo", "slow"]);
    assert_eq!(
        app.register(&stdio_fixture("busy", Some(&tools.path)))
            .await
            .status(),
        201
    );
    assert_eq!(echo(&app, &app.executor_url, "busy").await.0, 200);
    // A four-second call, given a moment to reach the server.
    let slow_call = || {
        tokio::spawn(
            app.http
                .post(format!("{}/tools/busy/slow", app.executor_url))
                .json(&json!({ "ms": 4000 }))
                .send(),
        )
    };
    let moment = || tokio::time::sleep(std::time::Duration::from_millis(300));

    // A new revision while a call runs: the call keeps its session.
    let slow = slow_call();
    moment().await;
    let changed = app
        .patch_service("busy", &json!({ "description": "now revised" }))
        .await;
    assert_eq!(changed.status(), 200);
    let answer = slow.await.unwrap().unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap(), json!("slept 4000ms"));

    // Deleted while a call runs: new calls find no service at once, the one
    // in flight is still answered.
    let slow = slow_call();
    moment().await;
    assert_eq!(app.delete_service("busy").await.status(), 204);
    wait_for_status(&app, &app.executor_url, "busy", 404).await;
    assert!(
        !slow.is_finished(),
        "the deletion reached the executor while the call ran"
    );
    let answer = slow.await.unwrap().unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap(), json!("slept 4000ms"));
}
