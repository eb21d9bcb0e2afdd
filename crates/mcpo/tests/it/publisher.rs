use mcpo_test_support::{FixtureHttp, TestApp};
use serde_json::{json, Value};

use crate::{register_published, stdio_fixture};

#[tokio::test]
async fn document_lists_every_tool_with_its_schemas_and_validates() {
    let app = TestApp::spawn().await;
    let empty = app.openapi().await;
    assert_eq!(empty["openapi"], "3.1.0");
    assert_eq!(empty["paths"], json!({}));

    let fixture = FixtureHttp::start(None).await;
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    assert_eq!(
        app.register(&json!({ "name": "web", "transport": fixture.transport() }))
            .await
            .status(),
        201
    );
    let doc = app
        .wait_for_openapi(|doc| {
            doc["paths"].get("/tools/fx/echo").is_some()
                && doc["paths"].get("/tools/web/add").is_some()
        })
        .await;

    assert_eq!(doc["servers"][0]["url"], app.executor_url);
    assert_eq!(doc["paths"].as_object().unwrap().len(), 8);
    let add = &doc["paths"]["/tools/fx/add"]["post"];
    assert_eq!(add["operationId"], "fx__add");
    assert_eq!(add["tags"], json!(["fx"]));
    assert_eq!(
        add["requestBody"]["content"]["application/json"]["schema"]["required"],
        json!(["a", "b"])
    );
    assert_eq!(
        add["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["sum"]
            ["type"],
        "number"
    );
    assert_eq!(
        add["responses"]["502"]["$ref"],
        "#/components/responses/BadGateway"
    );
    assert_eq!(
        doc["components"]["responses"]["BadGateway"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/Error"
    );
    let statuses: Vec<&String> = add["responses"].as_object().unwrap().keys().collect();
    assert_eq!(
        statuses,
        ["200", "400", "401", "403", "404", "413", "422", "429", "502", "503", "504"]
    );
    let echo = &doc["paths"]["/tools/fx/echo"]["post"];
    assert_eq!(echo["summary"], "Echo");
    assert_eq!(echo["x-mcp-annotations"]["readOnlyHint"], true);
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["fx", "web"]);

    mcpo_test_support::validate_openapi(&doc);
}

#[tokio::test]
async fn etag_answers_not_modified_until_the_document_changes() {
    let app = TestApp::spawn().await;
    let url = format!("{}/openapi.json", app.publisher_url);
    let first = app.http.get(&url).send().await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let cached = app
        .http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);

    let doc = register_published(&app, "fx").await;
    assert!(doc["paths"].get("/tools/fx/add").is_some());
    let fresh = app
        .http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 200);
    assert_ne!(fresh.headers()["etag"].to_str().unwrap(), etag);
}

#[tokio::test]
async fn yaml_per_service_documents_and_the_docs_page() {
    let app = TestApp::spawn().await;
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    let fixture = FixtureHttp::start(None).await;
    assert_eq!(
        app.register(&json!({ "name": "web", "transport": fixture.transport() }))
            .await
            .status(),
        201
    );
    let json_doc = app
        .wait_for_openapi(|doc| {
            doc["paths"].get("/tools/fx/echo").is_some()
                && doc["paths"].get("/tools/web/echo").is_some()
        })
        .await;

    let yaml = app.publisher_get("/openapi.yaml").await;
    assert_eq!(yaml.headers()["content-type"], "application/yaml");
    let yaml_doc: Value = serde_yaml_ng::from_str(&yaml.text().await.unwrap()).unwrap();
    assert_eq!(yaml_doc, json_doc, "the YAML is the same document");

    let one: Value = app
        .publisher_get("/services/fx/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    let paths: Vec<&String> = one["paths"].as_object().unwrap().keys().collect();
    assert_eq!(
        paths,
        [
            "/tools/fx/add",
            "/tools/fx/echo",
            "/tools/fx/fail",
            "/tools/fx/slow"
        ]
    );
    assert_eq!(one["tags"][0]["name"], "fx");
    mcpo_test_support::validate_openapi(&one);

    let missing = app.publisher_get("/services/ghost/openapi.json").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["code"],
        "service_not_found"
    );

    let page = app.publisher_get("/docs").await;
    assert_eq!(page.status(), 200);
    // The document is embedded: the browser could not send a token to fetch it.
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script id="api-reference" type="application/json">"#));
    assert!(html.contains(r#""openapi""#), "{html}");
}

/// The versioning rules alone, on a database of its own where no publisher
/// is rebuilding at the same time.
#[tokio::test]
async fn versions_are_stored_once_per_distinct_document() {
    let database = mcpo_test_support::database::TestDatabase::create().await;
    let settings = mcpo_test_support::app::isolated_settings(&database);
    let pool = mcpo_core::db::build_pool(&settings.database, "versions-test").unwrap();
    let mut conn = pool.get().await.unwrap();
    // Beside `conn`, which `record` holds.
    let mut other = pool.get().await.unwrap();
    let doc = |title: &str| json!({ "openapi": "3.1.0", "info": { "title": title, "version": "" }, "paths": {} });
    let mut record = async |title: &str| {
        let document = doc(title);
        let hash = mcpo_core::domain::schema_hash::canonical_hash(&document);
        let mut rendered_as = None;
        let built = mcpo_publisher::versions::Built {
            hash: &hash,
            service_count: 0,
            path_count: 0,
        };
        let outcome = mcpo_publisher::versions::record(&mut conn, built, 3, |version| {
            rendered_as = Some(version);
            let mut numbered = document.clone();
            numbered["info"]["version"] = version.to_string().into();
            serde_json::to_vec_pretty(&numbered).unwrap()
        })
        .await
        .unwrap();
        let expected = outcome.1.then_some(outcome.0);
        assert_eq!(
            rendered_as, expected,
            "rendered, with its number, only when new"
        );
        outcome
    };
    assert_eq!(record("a").await, (1, true));
    assert_eq!(
        record("a").await,
        (1, false),
        "the same document is not a new version"
    );
    assert_eq!(record("b").await, (2, true));
    assert_eq!(
        record("a").await,
        (3, true),
        "going back to an older document is a change"
    );
    let stored = mcpo_publisher::versions::load(&mut other, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored["info"], json!({ "title": "a", "version": "1" }));
    assert!(mcpo_publisher::versions::load(&mut other, 99)
        .await
        .unwrap()
        .is_none());
    let published = mcpo_core::outbox::pending(&pool).await.unwrap();
    assert_eq!(
        published, 3,
        "each new version has its openapi.published event"
    );

    // Three versions are kept: the fourth prunes the first, not the record
    // of its pushes.
    use diesel_async::RunQueryDsl;
    diesel::sql_query("INSERT INTO openapi_pushes (target, version) VALUES ('dir:/srv', 1)")
        .execute(&mut other)
        .await
        .unwrap();
    assert_eq!(record("d").await, (4, true));
    let load = async |conn: &mut _, version| {
        mcpo_publisher::versions::load(conn, version)
            .await
            .unwrap()
            .is_some()
    };
    assert!(!load(&mut other, 1).await, "version 1 is pruned");
    assert!(load(&mut other, 2).await && load(&mut other, 4).await);
    let pushes: i64 = diesel::dsl::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT count(*) FROM openapi_pushes WHERE version = 1)",
    ))
    .get_result(&mut other)
    .await
    .unwrap();
    assert_eq!(pushes, 1);
}

/// With `MCPO_OPENAPI_VERSIONS_KEPT=2`, a version two newer ones replaced is
/// no longer served, and the answer says why.
#[tokio::test]
async fn only_the_latest_versions_stay_stored() {
    let app = TestApp::spawn_with(|settings| settings.publish.versions_kept = 2).await;
    register_published(&app, "fx").await;
    let doc = register_published(&app, "fy").await;
    let latest: i64 = doc["info"]["version"].as_str().unwrap().parse().unwrap();
    assert!(latest >= 3, "{latest}");
    let url = format!("{}/openapi.json", app.publisher_url);
    let previous = app.get_json(&format!("{url}?version={}", latest - 1)).await;
    assert_eq!(previous["info"]["version"], (latest - 1).to_string());
    let pruned = app
        .http
        .get(format!("{url}?version=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(pruned.status(), 404);
    let body: Value = pruned.json().await.unwrap();
    assert_eq!(body["code"], "version_not_found");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no longer stored"),
        "{body}"
    );
}

#[tokio::test]
async fn older_versions_are_served_and_each_new_one_is_announced() {
    let app = TestApp::spawn().await;
    let url = format!("{}/openapi.json", app.publisher_url);
    let first = app.http.get(&url).send().await.unwrap();
    assert_eq!(first.headers()["x-mcpo-document-version"], "1");

    let doc = register_published(&app, "fx").await;
    let version: i64 = doc["info"]["version"].as_str().unwrap().parse().unwrap();
    assert!(version >= 2);

    let old = app.get_json(&format!("{url}?version=1")).await;
    assert_eq!(old["paths"], json!({}));
    assert_eq!(old["info"]["version"], "1");
    let missing = app
        .http
        .get(format!("{url}?version=999"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["code"],
        "version_not_found"
    );
    let junk = app
        .http
        .get(format!("{url}?version=two"))
        .send()
        .await
        .unwrap();
    assert_eq!(junk.status(), 400);

    let published = app
        .wait_for_events(
            "the new version is announced",
            |event| match event {
                mcpo_core::events::Event::OpenapiPublished(p) => Some(p.version),
                _ => None,
            },
            |published| published.contains(&version),
        )
        .await;
    assert_eq!(published.first(), Some(&1));
    assert!(published.contains(&version), "{published:?}");
    let mut distinct = published.clone();
    distinct.dedup();
    assert_eq!(distinct, published, "each version announced once");
}

/// Schemathesis reads the published 3.1 document and calls the executor with
/// what it generates (the `tree` tool's recursive schema included): no 5xx,
/// no answer the document does not list. `slow` (unbounded sleeps), and
/// `fail` and `bad_output` (a 502 by design), are left out.
#[tokio::test]
async fn schemathesis_finds_nothing_in_the_executor_from_the_published_document() {
    let app = TestApp::spawn().await;
    let tools = mcpo_test_support::ToolsFile::new(&[
        "echo",
        "add",
        "reverse",
        "request_meta",
        "process_id",
        "image",
        "tree",
    ]);
    assert_eq!(
        app.register(&stdio_fixture("fx", Some(&tools.path)))
            .await
            .status(),
        201
    );
    let doc = app
        .wait_for_openapi(|doc| doc["paths"].get("/tools/fx/tree").is_some())
        .await;
    let file = std::env::temp_dir().join(format!(
        "mcpo-published-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let auth = format!(
        "Authorization: Bearer {}",
        app.token(mcpo_test_support::app::ALL_PERMISSIONS)
    );
    let (schema, url) = (
        file.to_string_lossy().into_owned(),
        app.executor_url.clone(),
    );
    let outcome = tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(|| {
            mcpo_test_support::schemathesis(&schema, &["--url", &url, "--header", &auth])
        })
    })
    .await
    .unwrap();
    let _ = std::fs::remove_file(&file);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
