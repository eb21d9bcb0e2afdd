//! Versioned config snapshots: every registration, update and delete lands
//! in the config store (a directory, or S3 on a local moto server), secrets
//! sealed; a store that fails never costs a registration, and the snapshot
//! is written once the store works.

use std::path::Path;
use std::time::Duration;

use mcpo_core::aws::S3Location;
use mcpo_core::config::{ConfigStore, Settings};
use mcpo_core::domain::TransportConfig;
use mcpo_test_support::moto::{unique_bucket, unreachable_aws};
use mcpo_test_support::{eventually, MotoServer, TestApp};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::stdio_fixture;

const REPORT: &str = "/api/v1/mcpo/config-snapshots";

/// Failed uploads are retried quickly, so the tests do not wait on backoff.
fn fast_retries(settings: &mut Settings) {
    settings.config_store.retry_min = Duration::from_millis(50);
    settings.config_store.retry_max = Duration::from_millis(200);
}

/// Registers the fixture over stdio as `fx`, with a secret in its
/// environment; returns the service's id.
async fn register_with_secret(app: &TestApp, secret: &str) -> String {
    let mut body = stdio_fixture("fx", None);
    body["transport"]["env"] = json!({ "FIXTURE_TOKEN": secret });
    let registered = app.register(&body).await;
    assert_eq!(registered.status(), 201);
    registered.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn secret() -> String {
    format!("plaintext-{}", Uuid::new_v4().simple())
}

async fn report(app: &TestApp, query: &str) -> Value {
    let response = app.registry_get(&format!("{REPORT}{query}")).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Waits until the failed snapshot has been tried twice; returns the report
/// of failed snapshots.
async fn retried_failure(app: &TestApp) -> Value {
    eventually("the upload is retried and its error recorded", async || {
        let failed = report(app, "?status=failed").await;
        if failed["snapshots"][0]["attempts"].as_i64() >= Some(2) {
            Ok(failed)
        } else {
            Err(failed)
        }
    })
    .await
}

/// Every file under `dir`, as (path relative to `dir`, content).
fn files(dir: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((relative, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The stored env value opens with the deployment's keys: a restore works.
fn assert_sealed_secret(app: &TestApp, snapshot: &Value, secret: &str) {
    let sealed = snapshot["transport"]["env"]["FIXTURE_TOKEN"]
        .as_str()
        .unwrap();
    assert!(sealed.starts_with("mcpo:v1:"), "{snapshot:#}");
    let transport: TransportConfig = serde_json::from_value(snapshot["transport"].clone()).unwrap();
    let opened = app
        .settings
        .secret_keys
        .as_ref()
        .unwrap()
        .open_transport(&transport)
        .unwrap();
    assert_eq!(opened, {
        let mut plain = transport.clone();
        if let TransportConfig::Stdio { env, .. } = &mut plain {
            env.insert("FIXTURE_TOKEN".into(), secret.to_owned());
        }
        plain
    });
}

#[tokio::test]
async fn a_directory_store_keeps_every_revision_with_secrets_sealed() {
    let dir = std::env::temp_dir().join(format!("mcpo-snapshots-{}", Uuid::new_v4().simple()));
    let root = dir.clone();
    let app = TestApp::spawn_with(|s| s.config_store.store = ConfigStore::Dir(root)).await;
    let secret = secret();
    let id = register_with_secret(&app, &secret).await;
    let updated = app
        .patch_service("fx", &json!({ "description": "second" }))
        .await;
    assert_eq!(updated.status(), 200);
    let disabled = app.patch_service("fx", &json!({ "enabled": false })).await;
    assert_eq!(disabled.status(), 200);

    let revision = |n: u32| format!("services/fx/{id}/{n:010}.json");
    let expected: Vec<String> = vec![
        revision(1),
        revision(2),
        revision(3),
        "services/fx/latest.json".into(),
    ];
    let written = eventually("three revisions and latest.json are written", async || {
        let found = files(&dir);
        let names: Vec<&String> = found.iter().map(|(name, _)| name).collect();
        let mut wanted: Vec<&String> = expected.iter().collect();
        wanted.sort();
        // latest.json is written after its revision: wait for it to be the third.
        let latest_is_third = found
            .iter()
            .any(|(name, body)| name.ends_with("latest.json") && body.contains("\"revision\": 3"));
        if names == wanted && latest_is_third {
            Ok(found)
        } else {
            Err(names.into_iter().cloned().collect::<Vec<_>>())
        }
    })
    .await;
    for (name, body) in &written {
        assert!(!body.contains(&secret), "{name} holds the plaintext secret");
    }
    let read = |key: &str| -> Value {
        let (_, body) = written.iter().find(|(name, _)| name == key).unwrap();
        serde_json::from_str(body).unwrap()
    };

    let first = read(&revision(1));
    assert_eq!(first["format"], 1);
    assert_eq!(first["name"], "fx");
    assert_eq!(first["service_id"], id.as_str());
    assert_eq!(first["revision"], 1);
    assert_eq!(first["deleted"], false);
    assert_eq!(first["enabled"], true);
    assert_eq!(first["description"], Value::Null);
    assert_eq!(first["transport"]["type"], "stdio");
    assert_sealed_secret(&app, &first, &secret);
    let tools = first["tools"].as_array().unwrap();
    let echo = tools.iter().find(|t| t["name"] == "echo").unwrap();
    assert_eq!(echo["endpoint"], "/tools/fx/echo");
    let hash = echo["schema_hash"].as_str().unwrap();
    assert!(
        hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{echo}"
    );

    let second = read(&revision(2));
    assert_eq!(
        (
            &second["revision"],
            &second["description"],
            &second["enabled"]
        ),
        (&json!(2), &json!("second"), &json!(true))
    );
    let third = read(&revision(3));
    assert_eq!(
        (&third["revision"], &third["enabled"]),
        (&json!(3), &json!(false))
    );
    assert_eq!(read("services/fx/latest.json"), third);

    // A delete leaves a tombstone at the next revision.
    let deleted = app.delete_service("fx").await;
    assert_eq!(deleted.status(), 204);
    let tombstone = eventually(
        "the tombstone is written",
        async || match std::fs::read_to_string(dir.join(revision(4))) {
            Ok(body) => Ok(serde_json::from_str::<Value>(&body).unwrap()),
            Err(e) => Err(e.to_string()),
        },
    )
    .await;
    assert_eq!(
        (
            &tombstone["deleted"],
            &tombstone["name"],
            &tombstone["revision"]
        ),
        (&json!(true), &json!("fx"), &json!(4))
    );
    assert!(tombstone.get("transport").is_none(), "{tombstone:#}");

    let all = eventually("the report shows nothing pending", async || {
        let all = report(&app, "").await;
        if all["pending"] == 0 && all["snapshots"].as_array().unwrap().len() == 4 {
            Ok(all)
        } else {
            Err(all)
        }
    })
    .await;
    assert_eq!(all["failed"], 0);
    assert_eq!(all["store"], format!("dir:{}", dir.display()));
    let newest = &all["snapshots"][0];
    assert_eq!(
        (&newest["revision"], &newest["deleted"], &newest["key"]),
        (&json!(4), &json!(true), &json!(revision(4)))
    );
    assert!(newest["uploaded_at"].is_string(), "{newest}");
    assert_eq!(
        report(&app, "?status=pending").await["snapshots"],
        json!([])
    );
    assert_eq!(
        report(&app, "?status=uploaded&limit=2").await["snapshots"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

fn s3_store(settings: &mut Settings, moto: &MotoServer, bucket: &str) {
    settings.aws = moto.aws_settings();
    settings.config_store.store = ConfigStore::S3(S3Location {
        bucket: bucket.to_owned(),
        prefix: "mcpo/config".into(),
    });
    fast_retries(settings);
}

#[tokio::test]
async fn an_s3_store_receives_every_revision() {
    let moto = MotoServer::start().await;
    let bucket = unique_bucket();
    moto.create_bucket(&bucket).await;
    let app = TestApp::spawn_with(|s| s3_store(s, &moto, &bucket)).await;
    let secret = secret();
    let id = register_with_secret(&app, &secret).await;
    assert_eq!(
        app.patch_service("fx", &json!({ "description": "second" }))
            .await
            .status(),
        200
    );

    let expected = vec![
        format!("mcpo/config/services/fx/{id}/0000000001.json"),
        format!("mcpo/config/services/fx/{id}/0000000002.json"),
        "mcpo/config/services/fx/latest.json".to_owned(),
    ];
    eventually("both revisions are in the bucket", async || {
        let keys = moto.object_keys(&bucket, "mcpo/").await?;
        let latest: Value = match keys == expected {
            true => serde_json::from_slice(&moto.object(&bucket, &expected[2]).await).unwrap(),
            false => return Err(format!("{keys:?}")),
        };
        if latest["revision"] == 2 {
            Ok(())
        } else {
            Err(format!("latest.json is {latest}"))
        }
    })
    .await;
    for key in &expected {
        let body = String::from_utf8(moto.object(&bucket, key).await).unwrap();
        assert!(!body.contains(&secret), "{key} holds the plaintext secret");
    }
    let second: Value = serde_json::from_slice(&moto.object(&bucket, &expected[1]).await).unwrap();
    assert_eq!(second["description"], "second");
    assert_sealed_secret(&app, &second, &secret);
    let all = report(&app, "").await;
    assert_eq!(all["store"], format!("s3://{bucket}/mcpo/config"));
    assert_eq!((&all["pending"], &all["failed"]), (&json!(0), &json!(0)));
}

#[tokio::test]
async fn a_missing_bucket_keeps_the_registration_and_the_snapshot_follows_once_it_exists() {
    let moto = MotoServer::start().await;
    let bucket = unique_bucket();
    let app = TestApp::spawn_with(|s| s3_store(s, &moto, &bucket)).await;
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    // A second change queues behind the first, in order.
    assert_eq!(
        app.patch_service("fx", &json!({ "description": "second" }))
            .await
            .status(),
        200
    );

    let failing = retried_failure(&app).await;
    let entry = &failing["snapshots"][0];
    assert_eq!(
        (&failing["pending"], &failing["failed"]),
        (&json!(2), &json!(1)),
        "{failing:#}"
    );
    assert_eq!(entry["revision"], 1, "{failing:#}");
    assert!(
        entry["last_error"]
            .as_str()
            .unwrap()
            .contains("NoSuchBucket"),
        "{failing:#}"
    );
    assert_eq!(entry["uploaded_at"], Value::Null);
    // The service itself is stored and served.
    assert_eq!(
        app.registry_get("/api/v1/mcpo/services/fx").await.status(),
        200
    );
    assert_eq!(
        app.call_tool("fx", "echo", &json!({ "message": "hi" }))
            .await
            .status(),
        200
    );

    moto.create_bucket(&bucket).await;
    let done = eventually(
        "both snapshots are written once the bucket exists",
        async || {
            let all = report(&app, "").await;
            if all["pending"] == 0 {
                Ok(all)
            } else {
                Err(all)
            }
        },
    )
    .await;
    let first = done["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["revision"] == 1)
        .unwrap();
    assert!(first["attempts"].as_i64() > Some(1), "{done:#}");
    assert!(first["last_error"].is_string(), "{done:#}");
    let keys = moto.object_keys(&bucket, "").await.unwrap();
    assert_eq!(keys.len(), 3, "{keys:?}");
    let latest: Value = serde_json::from_slice(
        &moto
            .object(&bucket, "mcpo/config/services/fx/latest.json")
            .await,
    )
    .unwrap();
    assert_eq!(latest["revision"], 2);
}

#[tokio::test]
async fn an_unreachable_store_is_retried_and_reported_without_failing_changes() {
    let key_secret = secret();
    let app = TestApp::spawn_with(|s| {
        s.aws = unreachable_aws(&key_secret);
        s.config_store.store = ConfigStore::S3(S3Location::parse("s3://mcpo-nowhere/x").unwrap());
        fast_retries(s);
    })
    .await;
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    assert_eq!(
        app.patch_service("fx", &json!({ "description": "still works" }))
            .await
            .status(),
        200
    );
    let failing = retried_failure(&app).await;
    assert_eq!(
        (&failing["pending"], &failing["failed"]),
        (&json!(2), &json!(1))
    );
    let error = failing["snapshots"][0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("s3://mcpo-nowhere/x/services/fx/"),
        "{error}"
    );
    // The secret key never appears in what is reported.
    assert!(!error.contains(&key_secret), "{error}");
}

#[tokio::test]
async fn the_report_refuses_bad_queries() {
    let app = TestApp::spawn().await;
    for (query, status) in [
        ("?status=lost", 400),
        ("?limit=0", 422),
        ("?limit=201", 422),
        ("?other=1", 400),
    ] {
        let response = app.registry_get(&format!("{REPORT}{query}")).await;
        assert_eq!(response.status(), status, "{query}");
        let body: Value = response.json().await.unwrap();
        assert!(body["code"].is_string(), "{query}: {body}");
    }
    let viewer = app.client_with(&["registry:read"]);
    let refused = viewer
        .get(format!("{}{REPORT}", app.registry_url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}

/// A snapshot the store refuses holds back its own service's later ones,
/// not other services', however many wait (more than the uploader takes at
/// once): `blocked`'s directory is a file, so its writes fail while
/// `fine`'s land; once it is a directory, `blocked`'s follow in order.
#[tokio::test]
async fn a_failing_service_does_not_hold_back_the_others() {
    let dir = std::env::temp_dir().join(format!("mcpo-snapshots-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("services")).unwrap();
    let blocker = dir.join("services/blocked");
    std::fs::write(&blocker, "not a directory").unwrap();
    let root = dir.clone();
    let app = TestApp::spawn_with(|s| {
        s.config_store.store = ConfigStore::Dir(root);
        fast_retries(s);
    })
    .await;
    assert_eq!(
        app.register(&stdio_fixture("blocked", None)).await.status(),
        201
    );
    const UPDATES: usize = 55;
    for n in 1..=UPDATES {
        let description = format!("update {n}");
        assert_eq!(
            app.patch_service("blocked", &json!({ "description": description }))
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        app.register(&stdio_fixture("fine", None)).await.status(),
        201
    );

    eventually("the other service's snapshot is written", async || {
        let found = files(&dir);
        if found
            .iter()
            .any(|(path, _)| path == "services/fine/latest.json")
        {
            Ok(())
        } else {
            Err(found)
        }
    })
    .await;
    let failed = retried_failure(&app).await;
    assert_eq!(
        (&failed["pending"], &failed["failed"]),
        (&json!(UPDATES + 1), &json!(1)),
        "blocked's first revision failed, the later ones wait: {failed:#}"
    );
    assert_eq!(failed["snapshots"][0]["service_name"], "blocked");

    std::fs::remove_file(&blocker).unwrap();
    // A row is stamped once its files are written: then all of them are.
    eventually("blocked's revisions follow", async || {
        let all = report(&app, "").await;
        if all["pending"] == 0 {
            Ok(())
        } else {
            Err(all)
        }
    })
    .await;
    let written = files(&dir);
    let blocked: Vec<&(String, String)> = written
        .iter()
        .filter(|(path, _)| path.starts_with("services/blocked/"))
        .collect();
    // Each revision, and latest.json.
    assert_eq!(blocked.len(), UPDATES + 2, "{blocked:?}");
    let latest = blocked
        .iter()
        .find(|(path, _)| path == "services/blocked/latest.json")
        .map(|(_, content)| serde_json::from_str::<Value>(content).unwrap())
        .unwrap();
    assert_eq!(
        latest["description"],
        format!("update {UPDATES}"),
        "{latest:#}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
