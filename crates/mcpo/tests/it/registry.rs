use mcpo_test_support::{everything_stdio, tool_names, FixtureHttp, TestApp, ToolsFile};
use serde_json::{json, Value};

use crate::{assert_everything_tools, refresh, stdio_fixture};

#[tokio::test]
async fn registers_the_fixture_over_stdio_with_every_tool() {
    let app = TestApp::spawn().await;
    let response = app.register(&stdio_fixture("fx", None)).await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["location"], "/api/v1/mcpo/services/fx");
    let service: Value = response.json().await.unwrap();
    assert_eq!(service["name"], "fx");
    assert_eq!(service["status"], "active");
    assert_eq!(service["revision"], 1);
    assert_eq!(service["server_info"]["name"], "mcpo-fixture");
    // Four tools although the fixture pages its list two at a time.
    assert_eq!(tool_names(&service), ["add", "echo", "fail", "slow"]);
    let add = service["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "add")
        .unwrap();
    assert_eq!(
        add["endpoint"],
        format!("{}/tools/fx/add", app.executor_url)
    );
    assert_eq!(add["output_schema"]["properties"]["sum"]["type"], "number");
    assert_eq!(add["input_schema"]["required"], json!(["a", "b"]));

    let listed: Value = app
        .registry_get("/api/v1/mcpo/services")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["services"].as_array().unwrap().len(), 1);
    let tools: Value = app
        .registry_get("/api/v1/mcpo/services/fx/tools")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tools["tools"].as_array().unwrap().len(), 4);
    let one = app.service("fx").await;
    assert_eq!(tool_names(&one), tool_names(&service));
}

#[tokio::test]
async fn registers_the_fixture_over_streamable_http_and_calls_it() {
    let app = TestApp::spawn().await;
    let fixture = FixtureHttp::start(None).await;
    let response = app
        .register(&json!({ "name": "fx-http", "transport": fixture.transport() }))
        .await;
    assert_eq!(response.status(), 201);
    let service: Value = response.json().await.unwrap();
    assert_eq!(tool_names(&service), ["add", "echo", "fail", "slow"]);

    let echo = app
        .call_tool("fx-http", "echo", &json!({ "message": "over http" }))
        .await;
    assert_eq!(echo.json::<Value>().await.unwrap(), json!("over http"));
    let add = app
        .call_tool("fx-http", "add", &json!({ "a": 1.5, "b": 2 }))
        .await;
    assert_eq!(add.json::<Value>().await.unwrap(), json!({ "sum": 3.5 }));
}

#[tokio::test]
async fn identical_schemas_are_stored_once() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register(&stdio_fixture("one", None)).await.status(),
        201
    );
    assert_eq!(
        app.register(&stdio_fixture("two", None)).await.status(),
        201
    );
    let mut conn = app.deps.pool.get().await.unwrap();
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use diesel_async::RunQueryDsl;
    let tools: Count = diesel::sql_query("SELECT count(*) AS n FROM tools")
        .get_result(&mut conn)
        .await
        .unwrap();
    let schemas: Count = diesel::sql_query("SELECT count(*) AS n FROM tool_schemas")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(tools.n, 8);
    assert_eq!(
        schemas.n, 4,
        "two registrations of the same server share their four schemas"
    );
}

#[tokio::test]
async fn refresh_stores_a_changed_tool_list_and_serves_it() {
    let app = TestApp::spawn().await;
    let tools_file = ToolsFile::new(&["echo", "add"]);
    assert_eq!(
        app.register(&stdio_fixture("fx", Some(&tools_file.path)))
            .await
            .status(),
        201
    );

    let unchanged = refresh(&app, "fx").await;
    assert_eq!(unchanged["changed"], false);
    assert_eq!(unchanged["service"]["revision"], 1);

    tools_file.set(&["echo", "add", "reverse"]);
    let changed = refresh(&app, "fx").await;
    assert_eq!(changed["changed"], true);
    assert_eq!(changed["service"]["revision"], 2);
    assert_eq!(tool_names(&changed["service"]), ["add", "echo", "reverse"]);

    let reversed = app
        .call_tool("fx", "reverse", &json!({ "text": "abc" }))
        .await;
    assert_eq!(reversed.status(), 200);
    assert_eq!(reversed.json::<Value>().await.unwrap(), json!("cba"));
    app.wait_for_openapi(|doc| doc["paths"].get("/tools/fx/reverse").is_some())
        .await;

    tools_file.set(&["echo"]);
    let shrunk = refresh(&app, "fx").await;
    assert_eq!(tool_names(&shrunk["service"]), ["echo"]);
    // The executor learns of the change through `tools.updated`: wait for it as a client would.
    app.wait_for_call_error("fx", "add", &json!({ "a": 1, "b": 2 }), "tool_not_found")
        .await;
}

#[tokio::test]
async fn delete_removes_the_service_its_endpoints_and_its_paths() {
    let app = TestApp::spawn().await;
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    assert_eq!(
        app.call_tool("fx", "echo", &json!({ "message": "x" }))
            .await
            .status(),
        200
    );
    app.wait_for_openapi(|doc| doc["paths"].get("/tools/fx/echo").is_some())
        .await;

    let deleted = app.delete_service("fx").await;
    assert_eq!(deleted.status(), 204);
    let get = app.registry_get("/api/v1/mcpo/services/fx").await;
    assert_eq!(get.status(), 404);
    assert_eq!(
        get.json::<Value>().await.unwrap()["code"],
        "service_not_found"
    );
    let again = app.delete_service("fx").await;
    assert_eq!(again.status(), 404);

    app.wait_for_openapi(|doc| doc["paths"].as_object().unwrap().is_empty())
        .await;
    app.wait_for_call_error(
        "fx",
        "echo",
        &json!({ "message": "x" }),
        "service_not_found",
    )
    .await;

    // The name is free again.
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
}

#[tokio::test]
async fn server_everything_over_stdio_registers_and_echoes() {
    let app = TestApp::spawn().await;
    let response = app
        .register(&json!({ "name": "everything", "transport": everything_stdio() }))
        .await;
    let status = response.status();
    let service: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{service:#}");
    assert_everything_tools(&service);

    let echo = app
        .call_tool("everything", "echo", &json!({ "message": "hi from mcpo" }))
        .await;
    assert_eq!(echo.status(), 200);
    let body: Value = echo.json().await.unwrap();
    assert!(body.to_string().contains("hi from mcpo"), "{body}");

    let doc = app
        .wait_for_openapi(|doc| doc["paths"].get("/tools/everything/echo").is_some())
        .await;
    mcpo_test_support::validate_openapi(&doc);
}
