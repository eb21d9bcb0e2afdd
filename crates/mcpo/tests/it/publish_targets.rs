//! Push targets of the publisher: each new version of the document lands in
//! a directory, in S3 and in an API Gateway REST API (all on a local moto
//! server), and API Gateway imports `/openapi.aws.json` with a resource per
//! tool. A target that fails is retried and reported, never holds up the
//! document, gets the newest version once it works, and never an older one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use mcpo_core::aws::{self, S3Location};
use mcpo_core::config::{ApiGatewayTarget, Settings};
use mcpo_core::db::schema::openapi_pushes;
use mcpo_core::server::Dependencies;
use mcpo_test_support::moto::{unique_bucket, unreachable_aws};
use mcpo_test_support::{eventually, MotoServer, TestApp};
use serde_json::Value;
use uuid::Uuid;

use crate::{register_published, stdio_fixture};

const STAGE: &str = "live";
const PREFIX: &str = "mcpo/openapi";

/// Quick retries; and room in the pool for the connection the pusher keeps
/// for its lock, beside the relay's, the uploader's and the monitor's.
fn fast(settings: &mut Settings) {
    settings.publish.retry_min = Duration::from_millis(50);
    settings.publish.retry_max = Duration::from_millis(200);
    settings.database.pool_size = 8;
}

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("mcpo-publish-{}", Uuid::new_v4().simple()))
}

/// What the publisher serves now, read consistently (the same version before
/// and after the three reads).
struct Served {
    version: i64,
    json: Vec<u8>,
    yaml: Vec<u8>,
    aws: Vec<u8>,
}

impl Served {
    /// The files a target holds for this version, relative to its root.
    fn files(&self) -> Vec<(String, &[u8])> {
        let v = self.version;
        vec![
            (format!("versions/{v}/openapi.json"), &self.json[..]),
            (format!("versions/{v}/openapi.yaml"), &self.yaml[..]),
            (format!("versions/{v}/openapi.aws.json"), &self.aws[..]),
            ("openapi.json".into(), &self.json[..]),
            ("openapi.yaml".into(), &self.yaml[..]),
            ("openapi.aws.json".into(), &self.aws[..]),
        ]
    }

    fn aws_document(&self) -> Value {
        serde_json::from_slice(&self.aws).unwrap()
    }
}

async fn fetch(app: &TestApp, path: &str) -> reqwest::Response {
    let response = app.publisher_get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    response
}

/// The version of the document `response` carries.
fn document_version(response: &reqwest::Response) -> i64 {
    response.headers()["x-mcpo-document-version"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn served(app: &TestApp) -> Served {
    eventually("one version is served throughout three reads", async || {
        let json = fetch(app, "/openapi.json").await;
        let version = document_version(&json);
        let json = json.bytes().await.unwrap().to_vec();
        let yaml = fetch(app, "/openapi.yaml").await.bytes().await.unwrap();
        let aws = fetch(app, "/openapi.aws.json").await.bytes().await.unwrap();
        let again = fetch(app, "/openapi.json").await.bytes().await.unwrap();
        if again == json {
            Ok(Served {
                version,
                json,
                yaml: yaml.to_vec(),
                aws: aws.to_vec(),
            })
        } else {
            Err(format!("version {version} changed while reading"))
        }
    })
    .await
}

async fn pushes(app: &TestApp) -> Value {
    let response = fetch(app, "/pushes").await;
    response.json().await.unwrap()
}

/// The report's entry for `target`.
fn entry<'a>(report: &'a Value, target: &str) -> &'a Value {
    report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == target)
        .unwrap_or_else(|| panic!("no `{target}` in {report:#}"))
}

/// Waits until every target in `targets` has the served version; returns it.
async fn all_pushed(app: &TestApp, targets: &[&str]) -> Served {
    eventually("every target has the served version", async || {
        let served = served(app).await;
        let report = pushes(app).await;
        let behind: Vec<&&str> = targets
            .iter()
            .filter(|t| entry(&report, t)["pushed_version"] != served.version)
            .collect();
        if behind.is_empty() {
            Ok(served)
        } else {
            Err(format!("{behind:?} behind: {report:#}"))
        }
    })
    .await
}

async fn apigateway_client(moto: &MotoServer) -> aws_sdk_apigateway::Client {
    aws_sdk_apigateway::Client::new(&aws::sdk_config(&moto.aws_settings()).await)
}

/// The endpoint paths of a service's tools, as the registry lists them.
async fn tool_paths(app: &TestApp, service: &str) -> BTreeSet<String> {
    let tools: Value = app
        .registry_get(&format!("/api/v1/mcpo/services/{service}/tools"))
        .await
        .json()
        .await
        .unwrap();
    let tools = tools["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("a list of tools: {tools:#}"));
    tools
        .iter()
        .map(|t| {
            let endpoint = t["endpoint"].as_str().unwrap();
            endpoint
                .strip_prefix(&app.executor_url)
                .unwrap_or(endpoint)
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn every_target_gets_the_current_version_and_api_gateway_imports_it() {
    let moto = MotoServer::start().await;
    let bucket = unique_bucket();
    moto.create_bucket(&bucket).await;
    let apigateway = apigateway_client(&moto).await;
    let api = apigateway
        .create_rest_api()
        .name(format!("mcpo-{}", Uuid::new_v4().simple()))
        .send()
        .await
        .expect("moto creates the REST API");
    let api_id = api.id().unwrap().to_owned();
    let dir = temp_dir();
    let app = TestApp::spawn_with(|s| {
        s.aws = moto.aws_settings();
        s.publish.dir = Some(dir.clone());
        s.publish.s3 = Some(S3Location {
            bucket: bucket.clone(),
            prefix: PREFIX.into(),
        });
        s.publish.apigateway = Some(ApiGatewayTarget {
            rest_api_id: api_id.clone(),
            stage: STAGE.into(),
            fail_on_warnings: true,
        });
        fast(s);
    })
    .await;
    register_published(&app, "fx").await;

    let dir_target = format!("dir:{}", dir.display());
    let s3_target = format!("s3://{bucket}/{PREFIX}");
    let api_target = format!("apigateway:{api_id}/{STAGE}");
    let served = all_pushed(&app, &[&dir_target, &s3_target, &api_target]).await;
    assert!(served.version >= 2, "fx made a new version");

    // The directory and the bucket hold exactly what is served.
    for (key, body) in served.files() {
        let on_disk = std::fs::read(dir.join(&key)).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(on_disk == body, "{key} on disk differs from what is served");
        let in_s3 = moto.object(&bucket, &format!("{PREFIX}/{key}")).await;
        assert!(in_s3 == body, "{key} in S3 differs from what is served");
    }
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // API Gateway has a resource with the operation's method for every
    // path of the document, and those are the fixture's tools.
    let document = served.aws_document();
    let documented: BTreeSet<String> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(documented, tool_paths(&app, "fx").await);
    let resources = apigateway
        .get_resources()
        .rest_api_id(&api_id)
        .limit(500)
        .send()
        .await
        .unwrap();
    let imported: BTreeSet<String> = resources
        .items()
        .iter()
        .filter(|r| r.resource_methods().is_some_and(|m| !m.is_empty()))
        .map(|r| r.path().unwrap().to_owned())
        .collect();
    assert_eq!(imported, documented);
    let echo = resources
        .items()
        .iter()
        .find(|r| r.path() == Some("/tools/fx/echo"))
        .unwrap();
    let methods: BTreeSet<&String> = echo.resource_methods().unwrap().keys().collect();
    assert_eq!(methods, BTreeSet::from([&"POST".to_owned()]));
    let integration = apigateway
        .get_integration()
        .rest_api_id(&api_id)
        .resource_id(echo.id().unwrap())
        .http_method("POST")
        .send()
        .await
        .unwrap();
    assert_eq!(
        integration.uri(),
        Some(format!("{}/tools/fx/echo", app.executor_url).as_str())
    );
    // The extension spells it `http_proxy`, as AWS documents it; AWS
    // answers `HTTP_PROXY`, moto as it was written.
    assert_eq!(
        integration
            .r#type()
            .map(|t| t.as_str().to_ascii_uppercase()),
        Some("HTTP_PROXY".to_owned())
    );

    // The stage runs a deployment of this version.
    let stage = apigateway
        .get_stage()
        .rest_api_id(&api_id)
        .stage_name(STAGE)
        .send()
        .await
        .unwrap();
    let deployments = apigateway
        .get_deployments()
        .rest_api_id(&api_id)
        .send()
        .await
        .unwrap();
    let deployed = deployments
        .items()
        .iter()
        .find(|d| d.id() == stage.deployment_id())
        .expect("the stage's deployment is listed");
    assert_eq!(
        deployed.description(),
        Some(format!("MCPO document version {}", served.version).as_str())
    );

    let report = pushes(&app).await;
    assert_eq!(report["current_version"], served.version);
    assert_eq!(report["failures"], 0, "{report:#}");
    for target in [&dir_target, &s3_target, &api_target] {
        let latest = &entry(&report, target)["latest"];
        assert_eq!(latest["version"], served.version, "{report:#}");
        assert_eq!(latest["attempts"], 1, "{report:#}");
        assert!(latest["pushed_at"].is_string(), "{report:#}");
        assert_eq!(latest["last_error"], Value::Null, "{report:#}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_missing_bucket_is_retried_and_reported_and_then_gets_only_the_newest_version() {
    let moto = MotoServer::start().await;
    let bucket = unique_bucket();
    let app = TestApp::spawn_with(|s| {
        s.aws = moto.aws_settings();
        s.publish.s3 = Some(S3Location {
            bucket: bucket.clone(),
            prefix: PREFIX.into(),
        });
        fast(s);
    })
    .await;
    let target = format!("s3://{bucket}/{PREFIX}");
    register_published(&app, "fx").await;
    let first = served(&app).await;

    let failing = eventually("the push is retried and its error recorded", async || {
        let report = pushes(&app).await;
        let latest = &entry(&report, &target)["latest"];
        if latest["version"] == first.version && latest["attempts"].as_i64() >= Some(2) {
            Ok(report)
        } else {
            Err(report)
        }
    })
    .await;
    let latest = &entry(&failing, &target)["latest"];
    let error = latest["last_error"].as_str().unwrap();
    assert!(error.contains("NoSuchBucket"), "{error}");
    assert!(
        error.contains(&format!("s3://{bucket}/{PREFIX}/")),
        "{error}"
    );
    assert_eq!(latest["pushed_at"], Value::Null);
    assert_eq!(entry(&failing, &target)["pushed_version"], Value::Null);
    assert!(failing["failures"].as_i64() >= Some(2), "{failing:#}");
    // Meanwhile the document is served, at its new version.
    assert_eq!(served(&app).await.version, first.version);

    // A newer version supersedes the one that could not be pushed.
    register_published(&app, "fy").await;
    let second = served(&app).await;
    assert!(second.version > first.version);
    eventually("the newer version is being pushed", async || {
        let report = pushes(&app).await;
        match entry(&report, &target)["latest"]["version"] == second.version {
            true => Ok(()),
            false => Err(report),
        }
    })
    .await;

    moto.create_bucket(&bucket).await;
    let done = all_pushed(&app, &[&target]).await;
    assert_eq!(done.version, second.version);
    let report = pushes(&app).await;
    let latest = &entry(&report, &target)["latest"];
    assert!(latest["pushed_at"].is_string(), "{report:#}");
    assert!(
        report["failures"].as_i64() >= failing["failures"].as_i64(),
        "{report:#}"
    );

    // Only the newest version landed: nothing older over it, before or after.
    let mut keys = moto.object_keys(&bucket, "").await.unwrap();
    keys.sort();
    let mut expected: Vec<String> = done
        .files()
        .into_iter()
        .map(|(key, _)| format!("{PREFIX}/{key}"))
        .collect();
    expected.sort();
    assert_eq!(keys, expected);
    for (key, body) in done.files() {
        assert!(moto.object(&bucket, &format!("{PREFIX}/{key}")).await == body);
    }
    let mut conn = app.deps.pool.get().await.unwrap();
    let older: Vec<(i64, Option<i64>, bool)> = openapi_pushes::table
        .filter(openapi_pushes::target.eq(&target))
        .filter(openapi_pushes::version.lt(second.version))
        .select((
            openapi_pushes::version,
            openapi_pushes::superseded_by,
            openapi_pushes::pushed_at.is_not_null(),
        ))
        .load(&mut conn)
        .await
        .unwrap();
    assert!(!older.is_empty());
    for (version, superseded_by, pushed) in older {
        assert!(!pushed, "version {version} was pushed");
        assert!(
            superseded_by.is_some_and(|by| by > version),
            "version {version}: {superseded_by:?}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_aws_fails_its_targets_but_not_the_directory_nor_the_document() {
    let secret = format!("secret-{}", Uuid::new_v4().simple());
    let dir = temp_dir();
    let app = TestApp::spawn_with(|s| {
        s.aws = unreachable_aws(&secret);
        s.publish.dir = Some(dir.clone());
        s.publish.s3 = Some(S3Location::parse("s3://mcpo-nowhere/x").unwrap());
        s.publish.apigateway = Some(ApiGatewayTarget {
            rest_api_id: "abcdef1234".into(),
            stage: STAGE.into(),
            fail_on_warnings: true,
        });
        fast(s);
    })
    .await;
    register_published(&app, "fx").await;
    let dir_target = format!("dir:{}", dir.display());
    let served = all_pushed(&app, &[&dir_target]).await;
    assert!(read_file(&dir, "openapi.json") == served.json);
    assert!(
        read_file(
            &dir,
            &format!("versions/{}/openapi.aws.json", served.version)
        ) == served.aws
    );

    let failing = eventually("both AWS targets fail, retried", async || {
        let report = pushes(&app).await;
        let retried = ["s3://mcpo-nowhere/x", "apigateway:abcdef1234/live"]
            .iter()
            .all(|t| {
                let latest = &entry(&report, t)["latest"];
                latest["version"] == served.version && latest["attempts"].as_i64() >= Some(2)
            });
        if retried {
            Ok(report)
        } else {
            Err(report)
        }
    })
    .await;
    assert!(failing["failures"].as_i64() >= Some(4), "{failing:#}");
    let s3 = entry(&failing, "s3://mcpo-nowhere/x");
    let api = entry(&failing, "apigateway:abcdef1234/live");
    let s3_error = s3["latest"]["last_error"].as_str().unwrap();
    let api_error = api["latest"]["last_error"].as_str().unwrap();
    assert!(s3_error.contains("s3://mcpo-nowhere/x/"), "{s3_error}");
    assert!(api_error.contains("REST API abcdef1234"), "{api_error}");
    for target in [s3, api] {
        assert!(target["failures"].as_i64() >= Some(2), "{failing:#}");
        assert_eq!(target["pushed_version"], Value::Null, "{failing:#}");
    }
    assert_eq!(entry(&failing, &dir_target)["failures"], 0);
    // The secret key never shows.
    assert!(!failing.to_string().contains(&secret));
    // The document is still served, at the version the targets wait for.
    assert_eq!(served_version(&app).await, served.version);

    // The report is for administrators, not document readers.
    let reader = app.client_with(&["openapi:read"]);
    let refused = reader
        .get(format!("{}/pushes", app.publisher_url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn of_two_publisher_replicas_one_pushes_each_version_once() {
    let dir = temp_dir();
    let app = TestApp::spawn_with(|s| {
        s.publish.dir = Some(dir.clone());
        fast(s);
    })
    .await;
    // Another publisher with its own pool and NATS connection, following
    // the same changes with the same target.
    let mut settings = app.settings.clone();
    settings.publisher_addr = ([127, 0, 0, 1], 0).into();
    let deps = Dependencies::connect(&settings, "mcpo-replica")
        .await
        .unwrap();
    let replica = mcpo_publisher::build(&settings, deps).await.unwrap();
    let replica_url = format!("http://{}", replica.addr());
    tokio::spawn(replica.run_until_stopped());

    for name in ["fx", "fy"] {
        assert_eq!(app.register(&stdio_fixture(name, None)).await.status(), 201);
    }
    app.wait_for_openapi(|doc| doc["paths"].get("/tools/fy/echo").is_some())
        .await;
    let target = format!("dir:{}", dir.display());
    let served = all_pushed(&app, &[&target]).await;
    assert!(read_file(&dir, "openapi.json") == served.json);

    // Both replicas raced for every version; one pushed it, once.
    let mut conn = app.deps.pool.get().await.unwrap();
    let rows: Vec<(i64, i32, bool)> = openapi_pushes::table
        .filter(openapi_pushes::target.eq(&target))
        .select((
            openapi_pushes::version,
            openapi_pushes::attempts,
            openapi_pushes::pushed_at.is_not_null(),
        ))
        .load(&mut conn)
        .await
        .unwrap();
    assert!(rows.iter().any(|(v, ..)| *v == served.version), "{rows:?}");
    for (version, attempts, pushed) in &rows {
        assert!(
            *attempts <= 1,
            "version {version} was attempted {attempts} times"
        );
        assert!(
            *pushed || *attempts == 0,
            "version {version} failed: {rows:?}"
        );
    }
    // The replica reports the same.
    let report = app.get_json(&format!("{replica_url}/pushes")).await;
    assert_eq!(entry(&report, &target)["pushed_version"], served.version);
    let _ = std::fs::remove_dir_all(&dir);
}

fn read_file(dir: &Path, key: &str) -> Vec<u8> {
    std::fs::read(dir.join(key)).unwrap_or_else(|e| panic!("{key}: {e}"))
}

async fn served_version(app: &TestApp) -> i64 {
    document_version(&fetch(app, "/openapi.json").await)
}
