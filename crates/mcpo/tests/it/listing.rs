//! The registry's own API document, and the service list's pages and filters.

use mcpo_test_support::{TestApp, ToolsFile};
use serde_json::{json, Value};

use crate::stdio_fixture;

#[tokio::test]
async fn the_registry_api_is_documented_and_the_document_validates() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .registry_get("/api/v1/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/v1/mcpo/services", vec!["get", "post"]),
        (
            "/api/v1/mcpo/services/{name}",
            vec!["get", "patch", "delete"],
        ),
        ("/api/v1/mcpo/services/{name}/tools", vec!["get"]),
        ("/api/v1/mcpo/services/{name}/refresh", vec!["post"]),
    ] {
        for method in methods {
            let operation = &paths[path][method];
            assert!(operation.is_object(), "{method} {path} is documented");
            let documented: Vec<&String> =
                operation["responses"].as_object().unwrap().keys().collect();
            assert!(
                documented.iter().any(|s| s.starts_with('4')),
                "{method} {path} documents its errors: {documented:?}"
            );
        }
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    mcpo_test_support::validate_openapi(&doc);

    let ui = app.registry_get("/api/v1/docs").await;
    assert_eq!(ui.status(), 200);
    assert!(ui.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(ui.text().await.unwrap().contains("MCPO registry API"));
}

#[tokio::test]
async fn the_list_pages_filters_and_searches() {
    let app = TestApp::spawn().await;
    let with_reverse = ToolsFile::new(&["echo", "reverse"]);
    for name in ["alpha", "bravo"] {
        assert_eq!(app.register(&stdio_fixture(name, None)).await.status(), 201);
    }
    assert_eq!(
        app.register(&stdio_fixture("charlie", Some(&with_reverse.path)))
            .await
            .status(),
        201
    );
    let names = |page: &Value| -> Vec<String> {
        page["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };

    let (_, first) = list(&app, "?limit=2").await;
    assert_eq!(names(&first), ["alpha", "bravo"]);
    assert_eq!(first["next_cursor"], "bravo");
    let (_, second) = list(&app, "?limit=2&cursor=bravo").await;
    assert_eq!(names(&second), ["charlie"]);
    assert!(second.get("next_cursor").is_none());
    let (_, all) = list(&app, "").await;
    assert_eq!(names(&all).len(), 3);
    assert!(
        all["services"][0].get("tools").is_none(),
        "pages carry no tools"
    );

    // Search matches service names and tool names, case-insensitively.
    assert_eq!(names(&list(&app, "?q=RAV").await.1), ["bravo"]);
    assert_eq!(names(&list(&app, "?q=reverse").await.1), ["charlie"]);
    assert_eq!(
        names(&list(&app, "?q=%25").await.1),
        Vec::<String>::new(),
        "% is a literal, not a wildcard"
    );

    let disabled = app
        .patch_service("bravo", &json!({ "enabled": false }))
        .await;
    assert_eq!(disabled.status(), 200);
    assert_eq!(names(&list(&app, "?status=disabled").await.1), ["bravo"]);
    assert_eq!(
        names(&list(&app, "?status=active&q=a").await.1),
        ["alpha", "charlie"]
    );

    let (status, error) = list(&app, "?limit=0").await;
    assert_eq!(
        (status, error["details"]["field"].as_str()),
        (422, Some("limit"))
    );
    let (status, error) = list(&app, "?status=sleepy").await;
    assert_eq!((status, error["code"].as_str()), (400, Some("bad_request")));
    let (status, _) = list(&app, "?colour=red").await;
    assert_eq!(status, 400);
}

async fn list(app: &TestApp, query: &str) -> (u16, Value) {
    let response = app
        .registry_get(&format!("/api/v1/mcpo/services{query}"))
        .await;
    let status = response.status().as_u16();
    (status, response.json::<Value>().await.unwrap())
}

/// Schemathesis drives the registry from its own document, registration and
/// import included: only the fixture may run over stdio, and URLs may not
/// point at this host, so fuzzed transports are refused, not run.
#[tokio::test]
async fn schemathesis_finds_nothing_in_the_registry_api() {
    let app = TestApp::spawn_with(|settings| {
        settings.stdio = mcpo_core::egress::StdioPolicy::allowing([(
            crate::MCPO.to_owned(),
            vec!["fixture".to_owned(), "stdio".to_owned()],
        )]);
        settings.egress = Default::default();
        settings.mcp_connect_timeout = std::time::Duration::from_secs(3);
    })
    .await;
    assert_eq!(
        app.register(&crate::stdio_fixture("fx", None))
            .await
            .status(),
        201
    );
    let schema = format!("{}/api/v1/openapi.json", app.registry_url);
    let auth = format!(
        "Authorization: Bearer {}",
        app.token(mcpo_test_support::app::ALL_PERMISSIONS)
    );
    tokio::task::spawn_blocking(move || {
        mcpo_test_support::openapi::schemathesis_with_config(
            &schema,
            &["--header", &auth],
            // Registration refuses more than JSON Schema can say (NUL bytes,
            // header syntax, the stdio allowlist, unreachable URLs), and a
            // fuzzed If-Match is stale: there, 412/422/502 are right answers.
            r#"
[[operations]]
include-operation-id-regex = "^(register|update|import)$"

[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "412", "422", "502", "503", "504"]
"#,
        )
    })
    .await
    .unwrap();
}
