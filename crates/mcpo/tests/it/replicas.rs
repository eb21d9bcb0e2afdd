//! Executor replicas: each follows every change on its own, and one that
//! lost NATS for a while catches up with what changed meanwhile.

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
    let answer = app
        .http
        .post(format!("{executor}/tools/{service}/echo"))
        .json(&json!({ "message": "hi" }))
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

async fn wait_for_status(app: &TestApp, executor: &str, service: &str, status: u16) {
    eventually(
        &format!("{executor} answers {status} for {service}"),
        async || match echo(app, executor, service).await {
            (s, _) if s == status => Ok(()),
            other => Err(other),
        },
    )
    .await
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

    gate.open();
    wait_for_status(&app, &replica_url, "gone", 404).await;
    let (status, body) = echo(&app, &replica_url, "stays").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "service_disabled");
    drop(handle.stop(false));
}
