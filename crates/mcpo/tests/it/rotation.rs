//! Operator commands on the database: re-sealing secrets after a key
//! rotation, and the first API key of a deployment.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use mcpo_core::db::queries;
use mcpo_core::db::schema::mcp_services;
use mcpo_core::domain::TransportConfig;
use mcpo_core::secrets::SecretKeyring;
use mcpo_test_support::app::authorized_client;
use mcpo_test_support::TestApp;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::MCPO;

fn mcpo_cli(app: &TestApp, args: &[&str], secret_keys: &str) -> std::process::Output {
    std::process::Command::new(MCPO)
        .args(args)
        .env("DATABASE_URL", app.settings.database.url.expose_secret())
        .env("MCPO_SECRET_KEYS", secret_keys)
        .output()
        .unwrap()
}

async fn stored_env(app: &TestApp, name: &str) -> String {
    let transport: Value = mcp_services::table
        .filter(mcp_services::name.eq(name))
        .select(mcp_services::transport)
        .first(&mut *app.deps.pool.get().await.unwrap())
        .await
        .unwrap();
    transport["env"]["API_TOKEN"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn reseal_moves_every_secret_to_the_new_key_and_the_old_key_can_go() {
    let old = format!("old:{}", SecretKeyring::generate_key());
    let spec = old.clone();
    let app = TestApp::spawn_with(move |settings| {
        settings.secret_keys = Some(SecretKeyring::parse(&spec).unwrap());
    })
    .await;
    let secret = format!("sk-{}", uuid::Uuid::new_v4().simple());
    let mut body = crate::stdio_fixture("sealed", None);
    body["transport"]["env"] = json!({ "API_TOKEN": secret });
    assert_eq!(app.register(&body).await.status(), 201);
    let before = stored_env(&app, "sealed").await;
    assert_eq!(SecretKeyring::sealed_key_id(&before), Some("old"));

    let new = format!("new:{}", SecretKeyring::generate_key());
    let both = format!("{new},{old}");
    let run = {
        let app_url = app.settings.database.url.expose_secret().to_owned();
        let both = both.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(MCPO)
                .args(["secrets", "reseal"])
                .env("DATABASE_URL", app_url)
                .env("MCPO_SECRET_KEYS", both)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("1 service(s) resealed with key `new`"),
        "{stdout}"
    );

    // Only the new key is needed now.
    let after = stored_env(&app, "sealed").await;
    assert_eq!(SecretKeyring::sealed_key_id(&after), Some("new"));
    let only_new = SecretKeyring::parse(&new).unwrap();
    let record = queries::find_service(&mut app.deps.pool.get().await.unwrap(), "sealed")
        .await
        .unwrap()
        .unwrap();
    match record.transport(Some(&only_new)).unwrap() {
        TransportConfig::Stdio { env, .. } => assert_eq!(env["API_TOKEN"], secret),
        other => panic!("{other:?}"),
    }
    assert!(record
        .transport(Some(&SecretKeyring::parse(&old).unwrap()))
        .is_err());
    // Nothing else changed: same revision, and a second run has nothing to do.
    assert_eq!(record.service.revision, 1);
    let again = mcpo_cli(&app, &["secrets", "reseal"], &both);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 service(s) resealed"));

    let audit: Value = app
        .registry_get("/api/v1/mcpo/audit?target=sealed")
        .await
        .json()
        .await
        .unwrap();
    let entry = &audit["entries"][0];
    assert_eq!(entry["action"], "service.secrets_resealed");
    assert!(entry["actor"].as_str().unwrap().starts_with("cli:"));
    assert!(!audit.to_string().contains(&secret));
}

#[tokio::test]
async fn the_first_api_key_comes_from_the_command_line() {
    let app = TestApp::spawn().await;
    let run = mcpo_cli(
        &app,
        &[
            "api-key",
            "create",
            "--name",
            "bootstrap",
            "--permission",
            "registry:read",
        ],
        "",
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let key = String::from_utf8_lossy(&run.stdout).trim().to_owned();
    assert!(key.starts_with("mcpo_"), "{key}");

    let client = authorized_client(&key);
    let listed = client
        .get(format!("{}/api/v1/mcpo/services", app.registry_url))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let refused = client
        .post(format!("{}/api/v1/mcpo/services", app.registry_url))
        .json(&crate::stdio_fixture("nope", None))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    let unknown = mcpo_cli(
        &app,
        &[
            "api-key",
            "create",
            "--name",
            "x",
            "--permission",
            "registry:everything",
        ],
        "",
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("registry:everything"));
}
