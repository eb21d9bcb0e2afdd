//! Role-based access control: every route of every service against every
//! role, the privileged corners of the registry (stdio servers, secrets in
//! exports), API keys, and the audit trail.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use diesel_async::RunQueryDsl;
use mcpo_test_support::app::{authorized_client, AUDIENCE};
use mcpo_test_support::{eventually, fixture_stdio, FixtureHttp, TestApp, ToolsFile};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{stdio_fixture, MCPO};

const SERVICES: &str = "/api/v1/mcpo/services";
const API_KEYS: &str = "/api/v1/mcpo/api-keys";
const AUDIT: &str = "/api/v1/mcpo/audit";

/// The roles of the matrix: a name and the permissions of its token; `None`
/// sends no credentials at all.
const ROLES: &[(&str, Option<&[&str]>)] = &[
    ("anonymous", None),
    ("none", Some(&[])),
    ("viewer", Some(&["registry:read", "openapi:read"])),
    ("operator", Some(&["registry:write"])),
    ("admin", Some(&["registry:admin"])),
    ("invoker", Some(&["tools:invoke"])),
    ("demo-invoker", Some(&["tools:invoke:fx"])),
    ("publisher-reader", Some(&["openapi:read"])),
];

/// Whether `grants` satisfy `required`, by the documented rules: registry
/// levels include the lower ones, and `tools:invoke` covers every
/// `tools:invoke:{service}`.
fn holds(grants: &[&str], required: &str) -> bool {
    let satisfied_by: Vec<String> = match required {
        "registry:read" => vec![
            "registry:read".into(),
            "registry:write".into(),
            "registry:admin".into(),
        ],
        "registry:write" => vec!["registry:write".into(), "registry:admin".into()],
        invoke if invoke.starts_with("tools:invoke:") => {
            vec!["tools:invoke".into(), invoke.to_owned()]
        }
        other => vec![other.to_owned()],
    };
    grants.iter().any(|g| satisfied_by.iter().any(|s| s == g))
}

/// A status and the body as JSON (`Null` when it is not JSON, e.g. HTML).
async fn read(response: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let text = response.text().await.unwrap();
    (
        status,
        challenge,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// Asserts an error answer's status and code; returns its body.
async fn expect_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    let (got, _, body) = read(response).await;
    assert_eq!(
        (got, body["code"].as_str()),
        (status, Some(code)),
        "{body:#}"
    );
    body
}

/// One route as the matrix requests it.
struct Route {
    service: &'static str,
    base: String,
    method: Method,
    /// The path as declared (for the table).
    template: String,
    /// The path requested.
    path: String,
    body: Option<Value>,
    /// The permission a caller must hold.
    required: String,
    /// What a caller holding it gets, when the test knows exactly.
    allowed: Option<u16>,
}

/// method, path template, permission, concrete path, body, allowed status.
type Expected = (
    &'static str,
    &'static str,
    &'static str,
    String,
    Option<Value>,
    u16,
);

/// The registry's API operations as this test expects them: method, path as
/// the OpenAPI document names it, the permission it declares, and how to
/// call it harmlessly (the concrete path, a body, and the status a caller
/// holding the permission gets).
fn registry_table() -> Vec<Expected> {
    let unknown_key = Uuid::new_v4();
    vec![
        (
            "GET",
            "/api/v1/mcpo/services",
            "registry:read",
            SERVICES.into(),
            None,
            200,
        ),
        (
            "POST",
            "/api/v1/mcpo/services",
            "registry:write",
            SERVICES.into(),
            // Valid JSON of the right shape whose name is refused after authorization.
            Some(
                json!({ "name": "Not A Name!", "transport": { "type": "streamable_http", "url": "http://127.0.0.1:9/mcp" } }),
            ),
            422,
        ),
        (
            "POST",
            "/api/v1/mcpo/services:import",
            "registry:write",
            format!("{SERVICES}:import"),
            Some(json!({ "mcpServers": {} })),
            200,
        ),
        (
            "GET",
            "/api/v1/mcpo/services:export",
            "registry:read",
            format!("{SERVICES}:export"),
            None,
            200,
        ),
        (
            "GET",
            "/api/v1/mcpo/services/{name}",
            "registry:read",
            format!("{SERVICES}/fx"),
            None,
            200,
        ),
        (
            "PATCH",
            "/api/v1/mcpo/services/{name}",
            "registry:write",
            format!("{SERVICES}/fx"),
            Some(json!({ "description": "x" })),
            200,
        ),
        (
            "DELETE",
            "/api/v1/mcpo/services/{name}",
            "registry:write",
            format!("{SERVICES}/nope"),
            None,
            404,
        ),
        (
            "GET",
            "/api/v1/mcpo/services/{name}/tools",
            "registry:read",
            format!("{SERVICES}/fx/tools"),
            None,
            200,
        ),
        (
            "POST",
            "/api/v1/mcpo/services/{name}/refresh",
            "registry:write",
            format!("{SERVICES}/fx/refresh"),
            None,
            200,
        ),
        (
            "POST",
            "/api/v1/mcpo/api-keys",
            "registry:admin",
            API_KEYS.into(),
            Some(json!({ "name": "matrix", "permissions": ["registry:read"] })),
            201,
        ),
        (
            "GET",
            "/api/v1/mcpo/api-keys",
            "registry:admin",
            API_KEYS.into(),
            None,
            200,
        ),
        (
            "DELETE",
            "/api/v1/mcpo/api-keys/{id}",
            "registry:admin",
            format!("{API_KEYS}/{unknown_key}"),
            None,
            404,
        ),
        (
            "GET",
            "/api/v1/mcpo/audit",
            "registry:admin",
            AUDIT.into(),
            None,
            200,
        ),
        (
            "GET",
            "/api/v1/mcpo/config-snapshots",
            "registry:admin",
            "/api/v1/mcpo/config-snapshots".into(),
            None,
            200,
        ),
    ]
}

const OPENAPI_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// The one permission an operation's `security` declares, or why not.
fn declared_permission(operation: &Value) -> Result<String, String> {
    let requirements = operation["security"]
        .as_array()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| format!("declares no `security`: {}", operation["security"]))?;
    let mut permissions = std::collections::BTreeSet::new();
    let mut bearer = false;
    for requirement in requirements {
        let object = requirement
            .as_object()
            .ok_or_else(|| format!("a security requirement is not an object: {requirement}"))?;
        for (scheme, scopes) in object {
            bearer |= scheme == "bearer";
            let scopes = scopes
                .as_array()
                .ok_or_else(|| format!("scheme `{scheme}` lists no scopes"))?;
            for scope in scopes {
                permissions.insert(scope.as_str().unwrap_or_default().to_owned());
            }
        }
    }
    if !bearer {
        return Err(format!(
            "declares no `bearer` requirement: {requirements:?}"
        ));
    }
    match permissions.len() {
        1 => Ok(permissions.into_iter().next().unwrap()),
        _ => Err(format!(
            "declares {} permissions, not one: {permissions:?}",
            permissions.len()
        )),
    }
}

/// Every route of the three services, with the table mismatches of the
/// registry's document (undeclared, changed or missing operations).
async fn all_routes(app: &TestApp) -> (Vec<Route>, Vec<String>) {
    let mut problems = Vec::new();
    let response = app.registry_get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    let paths = document["paths"]
        .as_object()
        .expect("the registry document has paths");

    let mut table: BTreeMap<(String, String), _> = registry_table()
        .into_iter()
        .map(|(method, template, permission, path, body, allowed)| {
            (
                (method.to_owned(), template.to_owned()),
                (permission, path, body, allowed),
            )
        })
        .collect();
    let mut routes = Vec::new();
    for (template, item) in paths {
        for method in OPENAPI_METHODS {
            let Some(operation) = item.get(*method) else {
                continue;
            };
            let method = method.to_uppercase();
            let declared = match declared_permission(operation) {
                Ok(p) => p,
                Err(problem) => {
                    problems.push(format!("registry {method} {template} {problem}"));
                    // Still walked: it must at least be closed to everyone.
                    "registry:admin".to_owned()
                }
            };
            let (path, body, allowed) = match table.remove(&(method.clone(), template.clone())) {
                Some((expected, path, body, allowed)) => {
                    if declared != expected {
                        problems.push(format!(
                                "registry {method} {template} declares `{declared}`, the test expects `{expected}`"
                            ));
                    }
                    (path, body, Some(allowed))
                }
                None => {
                    problems.push(format!(
                            "registry {method} {template} (needs `{declared}`) is not in this test's table: add it"
                        ));
                    let path = template
                        .replace("{name}", "fx")
                        .replace("{id}", &Uuid::new_v4().to_string());
                    (path, None, None)
                }
            };
            routes.push(Route {
                service: "registry",
                base: app.registry_url.clone(),
                method: method.parse().unwrap(),
                template: template.clone(),
                path,
                body,
                required: declared,
                allowed,
            });
        }
    }
    for ((method, template), (permission, ..)) in table {
        problems.push(format!(
            "registry {method} {template} (needs `{permission}`) is missing from the OpenAPI document"
        ));
    }

    for (path, allowed) in [("/api/v1/openapi.json", 200), ("/api/v1/docs", 200)] {
        routes.push(Route {
            service: "registry",
            base: app.registry_url.clone(),
            method: Method::GET,
            template: path.into(),
            path: path.into(),
            body: None,
            required: "registry:read".into(),
            allowed: Some(allowed),
        });
    }
    routes.push(Route {
        service: "executor",
        base: app.executor_url.clone(),
        method: Method::POST,
        template: "/tools/{service}/{tool}".into(),
        path: "/tools/fx/echo".into(),
        body: Some(json!({ "message": "hi" })),
        required: "tools:invoke:fx".into(),
        allowed: Some(200),
    });
    for path in [
        "/openapi.json",
        "/openapi.yaml",
        "/services/fx/openapi.json",
        "/docs",
    ] {
        routes.push(Route {
            service: "publisher",
            base: app.publisher_url.clone(),
            method: Method::GET,
            template: path.replace("/fx/", "/{name}/"),
            path: path.into(),
            body: None,
            required: "openapi:read".into(),
            allowed: Some(200),
        });
    }
    // Push targets' report: it names buckets and REST APIs, so admin only.
    routes.push(Route {
        service: "publisher",
        base: app.publisher_url.clone(),
        method: Method::GET,
        template: "/pushes".into(),
        path: "/pushes".into(),
        body: None,
        required: "registry:admin".into(),
        allowed: Some(200),
    });
    (routes, problems)
}

/// What is wrong with one answer, if anything.
fn judge(
    route: &Route,
    grants: Option<&[&str]>,
    status: u16,
    challenge: Option<&str>,
    body: &Value,
) -> Option<String> {
    match grants {
        None => {
            if status != 401 || body["code"] != "unauthenticated" {
                return Some(format!("expected 401 unauthenticated, got {status} {body}"));
            }
            if !challenge.is_some_and(|c| c.starts_with("Bearer realm=\"mcpo\"")) {
                return Some(format!("401 without a Bearer challenge: {challenge:?}"));
            }
            None
        }
        Some(grants) if !holds(grants, &route.required) => {
            if status != 403
                || body["code"] != "permission_denied"
                || body["details"]["required"] != route.required.as_str()
            {
                return Some(format!(
                    "expected 403 permission_denied requiring `{}`, got {status} {body}",
                    route.required
                ));
            }
            if !challenge.is_some_and(|c| c.contains("error=\"insufficient_scope\"")) {
                return Some(format!("403 without insufficient_scope: {challenge:?}"));
            }
            None
        }
        Some(_) => {
            let wrong = matches!(status, 401 | 403 | 500..=599)
                || route.allowed.is_some_and(|allowed| allowed != status);
            wrong.then(|| {
                format!(
                    "holds `{}`: expected {}, got {status} {body}",
                    route.required,
                    route
                        .allowed
                        .map_or("neither 401/403 nor 5xx".to_owned(), |s| s.to_string())
                )
            })
        }
    }
}

#[tokio::test]
async fn every_route_of_every_service_answers_each_role_as_declared() {
    let app = TestApp::spawn().await;
    // Over HTTP: a stdio service needs `registry:admin` for any change, which
    // the stdio tests below cover; here the routes' own permissions show.
    let fixture = FixtureHttp::start(None).await;
    assert_eq!(
        app.register(&json!({ "name": "fx", "transport": fixture.transport() }))
            .await
            .status(),
        201
    );
    // The executor and publisher follow registrations through events: wait
    // until both know fx, so an allowed caller gets a definite 200.
    app.wait_for_openapi(|doc| doc["paths"].get("/tools/fx/echo").is_some())
        .await;
    eventually("the executor serves fx", async || {
        let response = app
            .call_tool("fx", "echo", &json!({ "message": "hi" }))
            .await;
        match response.status().as_u16() {
            200 => Ok(()),
            status => Err((status, response.text().await.unwrap())),
        }
    })
    .await;
    eventually("the publisher serves fx's own document", async || {
        let response = app
            .http
            .get(format!("{}/services/fx/openapi.json", app.publisher_url))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => Ok(()),
            status => Err(status),
        }
    })
    .await;

    let (routes, mut mismatches) = all_routes(&app).await;
    let clients: Vec<reqwest::Client> = ROLES
        .iter()
        .map(|(_, grants)| match grants {
            None => reqwest::Client::new(),
            Some(grants) => app.client_with(grants),
        })
        .collect();

    // route × role: the status, and whether it was wrong.
    let mut grid: Vec<(String, Vec<(u16, bool)>)> = Vec::new();
    for route in &routes {
        let mut row = Vec::new();
        for ((role, grants), client) in ROLES.iter().zip(&clients) {
            let mut request = client.request(
                route.method.clone(),
                format!("{}{}", route.base, route.path),
            );
            if let Some(body) = &route.body {
                request = request.json(body);
            }
            let (status, challenge, body) = read(request.send().await.unwrap()).await;
            let problem = judge(route, *grants, status, challenge.as_deref(), &body);
            if let Some(problem) = &problem {
                mismatches.push(format!(
                    "{} {} {} as {role}: {problem}",
                    route.service, route.method, route.path
                ));
            }
            row.push((status, problem.is_some()));
        }
        grid.push((
            format!(
                "{:<9} {:<6} {} [{}]",
                route.service, route.method, route.template, route.required
            ),
            row,
        ));
    }

    if !mismatches.is_empty() {
        let width = grid.iter().map(|(r, _)| r.len()).max().unwrap_or(0);
        let mut table = format!("{:<width$}", "route [required]");
        for (role, _) in ROLES {
            write!(table, " | {role:>7}").unwrap();
        }
        table.push('\n');
        for (route, row) in &grid {
            write!(table, "{route:<width$}").unwrap();
            for (i, (status, wrong)) in row.iter().enumerate() {
                let cell = format!("{status}{}", if *wrong { "!" } else { "" });
                let w = ROLES[i].0.len().max(7);
                write!(table, " | {cell:>w$}").unwrap();
            }
            table.push('\n');
        }
        panic!(
            "{} answers differ from the permission matrix (`!` marks them):\n{table}\n{}",
            mismatches.len(),
            mismatches.join("\n")
        );
    }
    // The walk covered what the brief lists, at least.
    assert!(routes.len() >= 13 + 2 + 1 + 4, "{}", routes.len());
}

#[tokio::test]
async fn stdio_servers_and_secrets_need_registry_admin() {
    let app = TestApp::spawn().await;
    let writer = app.client_with(&["registry:write"]);
    let services = format!("{}{SERVICES}", app.registry_url);

    // Registering a stdio server runs a command on our hosts: admins only.
    let refused = expect_error(
        writer
            .post(&services)
            .json(&stdio_fixture("fx", None))
            .send()
            .await
            .unwrap(),
        403,
        "permission_denied",
    )
    .await;
    assert_eq!(
        refused["details"]["required"], "registry:admin",
        "{refused}"
    );
    assert_eq!(
        app.registry_get(&format!("{SERVICES}/fx")).await.status(),
        404
    );
    // Nor through an import.
    let imported: Value = writer
        .post(format!("{services}:import"))
        .json(&json!({ "mcpServers": { "fx": { "command": MCPO, "args": ["fixture", "stdio"] } } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(imported["registered"], 0, "{imported:#}");
    assert_eq!(
        imported["entries"][0]["code"], "permission_denied",
        "{imported:#}"
    );
    assert_eq!(
        app.registry_get(&format!("{SERVICES}/fx")).await.status(),
        404
    );

    // Streamable HTTP is for writers.
    let web = FixtureHttp::start(None).await;
    let registered = writer
        .post(&services)
        .json(&json!({ "name": "web", "transport": web.transport() }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);

    // A stdio service's transport stays an admin's business.
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    let patch = |name: &str, body: Value| {
        writer
            .patch(format!("{services}/{name}"))
            .json(&body)
            .send()
    };
    let mut other_command = fixture_stdio(MCPO, None);
    other_command["env"] = json!({ "EXTRA_SETTING": "1" });
    for (name, body) in [
        ("fx", json!({ "transport": other_command })),
        ("fx", json!({ "transport": web.transport() })),
        ("web", json!({ "transport": fixture_stdio(MCPO, None) })),
    ] {
        let refused = expect_error(
            patch(name, body.clone()).await.unwrap(),
            403,
            "permission_denied",
        )
        .await;
        assert_eq!(
            refused["details"]["required"], "registry:admin",
            "PATCH {name} {body}: {refused}"
        );
    }
    let fx: Value = app
        .registry_get(&format!("{SERVICES}/fx"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fx["revision"], 1, "{fx:#}");
    assert_eq!(fx["transport"]["type"], "stdio", "{fx:#}");
    let web_now: Value = app
        .registry_get(&format!("{SERVICES}/web"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        web_now["transport"]["type"], "streamable_http",
        "{web_now:#}"
    );

    // Nor anything else about a stdio service: enabling it, its sessions,
    // even its description, or a refresh (which starts its command).
    for change in [
        json!({ "description": "by a writer" }),
        json!({ "enabled": false }),
        json!({ "session_pool_size": 16 }),
        json!({ "transport": fx["transport"] }),
    ] {
        let refused = patch("fx", change.clone()).await.unwrap();
        assert_eq!(refused.status(), 403, "{change}");
    }
    let refreshed = writer
        .post(format!("{}{SERVICES}/fx/refresh", app.registry_url))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 403);
    // Nor moving an HTTP service to another URL.
    let moved_to = FixtureHttp::start(None).await;
    let moved = patch("web", json!({ "transport": moved_to.transport() }))
        .await
        .unwrap();
    assert_eq!(moved.status(), 200, "{}", moved.text().await.unwrap());

    // Secrets in clear: admins only.
    let export = format!("{services}:export");
    let refused = expect_error(
        writer
            .get(format!("{export}?include_secrets=true"))
            .send()
            .await
            .unwrap(),
        403,
        "permission_denied",
    )
    .await;
    assert_eq!(refused["details"]["required"], "registry:admin");
    let reader = app.client_with(&["registry:read"]);
    assert_eq!(reader.get(&export).send().await.unwrap().status(), 200);
    let refused = expect_error(
        reader
            .get(format!("{export}?include_secrets=true"))
            .send()
            .await
            .unwrap(),
        403,
        "permission_denied",
    )
    .await;
    assert_eq!(refused["details"]["required"], "registry:admin");
    let admin = app.client_with(&["registry:admin"]);
    let exported = admin
        .get(format!("{export}?include_secrets=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(exported.status(), 200);
}

#[derive(diesel::QueryableByName)]
struct TextRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    text: String,
}

async fn texts(app: &TestApp, sql: &str) -> Vec<String> {
    let mut conn = app.deps.pool.get().await.unwrap();
    diesel::sql_query(sql)
        .load::<TextRow>(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.text)
        .collect()
}

fn with_api_key(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-api-key", key.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

#[tokio::test]
async fn api_keys_are_shown_once_stored_hashed_scoped_and_revocable() {
    let app = TestApp::spawn().await;
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    assert_eq!(
        app.register(&stdio_fixture("other", None)).await.status(),
        201
    );
    let keys = format!("{}{API_KEYS}", app.registry_url);

    let created = app
        .http
        .post(&keys)
        .json(&json!({ "name": "ci", "permissions": ["tools:invoke:fx"], "expires_in_days": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("mcpo_"), "{key}");
    assert_eq!(created["name"], "ci");
    assert_eq!(created["permissions"], json!(["tools:invoke:fx"]));
    assert!(created["expires_at"].is_string(), "{created:#}");
    assert!(created["revoked_at"].is_null(), "{created:#}");
    let prefix = created["prefix"].as_str().unwrap();
    assert!(key.starts_with(&format!("mcpo_{prefix}_")), "{created:#}");
    let secret_part = key.rsplit('_').next().unwrap().to_owned();

    // Never shown again.
    let listed = app.http.get(&keys).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let listed = listed.text().await.unwrap();
    assert!(!listed.contains(&key), "{listed}");
    assert!(!listed.contains(&secret_part), "{listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let entry = listed["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{listed:#}"));
    assert!(entry.get("key").is_none(), "{entry:#}");

    // Stored as a hash only.
    let rows = texts(&app, "SELECT row_to_json(k)::text AS text FROM api_keys k").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        !rows[0].contains(&key) && !rows[0].contains(&secret_part),
        "{rows:?}"
    );
    let hashes = texts(&app, "SELECT key_hash AS text FROM api_keys").await;
    assert_eq!(hashes, [mcpo_core::auth::api_key::hash(&key)]);

    // Works either way, for fx only.
    let echo = |client: &reqwest::Client, service: &str| {
        client
            .post(format!("{}/tools/{service}/echo", app.executor_url))
            .json(&json!({ "message": "hi" }))
            .send()
    };
    let as_bearer = authorized_client(&key);
    let as_header = with_api_key(&key);
    for client in [&as_bearer, &as_header] {
        let called = echo(client, "fx").await.unwrap();
        assert_eq!(called.status(), 200);
        assert_eq!(called.json::<Value>().await.unwrap(), json!("hi"));
        let refused = expect_error(
            echo(client, "other").await.unwrap(),
            403,
            "permission_denied",
        )
        .await;
        assert_eq!(refused["details"]["required"], "tools:invoke:other");
        let refused = expect_error(
            client
                .get(format!("{}{SERVICES}", app.registry_url))
                .send()
                .await
                .unwrap(),
            403,
            "permission_denied",
        )
        .await;
        assert_eq!(refused["details"]["required"], "registry:read");
        let refused = expect_error(
            client
                .get(format!("{}/openapi.json", app.publisher_url))
                .send()
                .await
                .unwrap(),
            403,
            "permission_denied",
        )
        .await;
        assert_eq!(refused["details"]["required"], "openapi:read");
    }

    // One credential per request: both is refused, even when both are good.
    let mut both_headers = reqwest::header::HeaderMap::new();
    both_headers.insert(
        "authorization",
        format!("Bearer {}", app.token(&["tools:invoke"]))
            .parse()
            .unwrap(),
    );
    both_headers.insert("x-api-key", key.parse().unwrap());
    let both = reqwest::Client::builder()
        .default_headers(both_headers)
        .build()
        .unwrap();
    expect_error(echo(&both, "fx").await.unwrap(), 401, "invalid_token").await;
    let key_twice = as_bearer
        .post(format!("{}/tools/fx/echo", app.executor_url))
        .header("x-api-key", &key)
        .json(&json!({ "message": "hi" }))
        .send()
        .await
        .unwrap();
    expect_error(key_twice, 401, "invalid_token").await;

    // Revoked: refused at once by every service (they share the
    // authenticator, whose cache the revocation clears).
    let revoked = app
        .http
        .delete(format!("{keys}/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let revoked: Value = revoked.json().await.unwrap();
    assert_eq!(revoked["id"], id.as_str());
    assert!(revoked["revoked_at"].is_string(), "{revoked:#}");
    assert!(revoked.get("key").is_none(), "{revoked:#}");
    for client in [&as_bearer, &as_header] {
        for response in [
            client
                .get(format!("{}{SERVICES}", app.registry_url))
                .send()
                .await
                .unwrap(),
            echo(client, "fx").await.unwrap(),
            client
                .get(format!("{}/openapi.json", app.publisher_url))
                .send()
                .await
                .unwrap(),
        ] {
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            expect_error(response, 401, "invalid_token").await;
            assert!(
                challenge.is_some_and(|c| c.contains("error=\"invalid_token\"")),
                "a revoked key's 401 carries the invalid_token challenge"
            );
        }
    }
    // Revoking again changes nothing.
    let again: Value = app
        .http
        .delete(format!("{keys}/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);

    // No handing out more than one holds: `registry:admin` alone covers the
    // registry levels, not invocation nor the publisher.
    let registry_admin = app.client_with(&["registry:admin"]);
    for permissions in [
        json!(["tools:invoke"]),
        json!(["tools:invoke:fx"]),
        json!(["openapi:read"]),
        json!(["registry:read", "tools:invoke"]),
    ] {
        let refused = expect_error(
            registry_admin
                .post(&keys)
                .json(&json!({ "name": "escalate", "permissions": permissions }))
                .send()
                .await
                .unwrap(),
            422,
            "invalid_request",
        )
        .await;
        assert_eq!(refused["details"]["field"], "permissions", "{refused:#}");
    }
    let lesser = registry_admin
        .post(&keys)
        .json(&json!({ "name": "lesser", "permissions": ["registry:read", "registry:write"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(lesser.status(), 201);
    for unknown in ["registry:*", "admin", "tools:invoke:Bad Name"] {
        let refused = expect_error(
            app.http
                .post(&keys)
                .json(&json!({ "name": "odd", "permissions": [unknown] }))
                .send()
                .await
                .unwrap(),
            422,
            "invalid_request",
        )
        .await;
        assert_eq!(refused["details"]["field"], "permissions[0]", "{refused:#}");
    }

    // Expired: refused (made to expire in the database before its first use).
    let expiring: Value = app
        .http
        .post(&keys)
        .json(&json!({ "name": "short", "permissions": ["tools:invoke:fx"], "expires_in_days": 1 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expiring_id: Uuid = expiring["id"].as_str().unwrap().parse().unwrap();
    {
        let mut conn = app.deps.pool.get().await.unwrap();
        let changed = diesel::sql_query(
            "UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE id = $1",
        )
        .bind::<diesel::sql_types::Uuid, _>(expiring_id)
        .execute(&mut conn)
        .await
        .unwrap();
        assert_eq!(changed, 1);
    }
    let expired = authorized_client(expiring["key"].as_str().unwrap());
    expect_error(echo(&expired, "fx").await.unwrap(), 401, "invalid_token").await;
}

#[tokio::test]
async fn every_change_is_audited_with_who_when_and_where_and_never_secrets() {
    let app = TestApp::spawn().await;
    let sub = format!("auditor-{}", Uuid::new_v4().simple());
    let mut claims = app.issuer.claims(AUDIENCE, &["registry:admin"]);
    claims["sub"] = sub.clone().into();
    let actor = authorized_client(&app.issuer.token(claims));
    let run = Uuid::new_v4().simple().to_string();
    let request_id = |step: &str| format!("rbac-{step}-{run}");
    let secret = format!("s3cr3t-{}", Uuid::new_v4());
    let new_secret = format!("s3cr3t-{}", Uuid::new_v4());
    let tools = ToolsFile::new(&["echo"]);
    let transport = |secret: &str| {
        let mut transport = fixture_stdio(MCPO, Some(&tools.path));
        transport["env"] = json!({ "API_TOKEN": secret });
        transport
    };
    let services = format!("{}{SERVICES}", app.registry_url);
    let keys = format!("{}{API_KEYS}", app.registry_url);

    let registered = actor
        .post(&services)
        .header("x-request-id", request_id("register"))
        .json(&json!({ "name": "fx", "description": "first", "transport": transport(&secret) }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let updated = actor
        .patch(format!("{services}/fx"))
        .header("x-request-id", request_id("update"))
        .json(&json!({ "description": "second", "transport": transport(&new_secret) }))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 200, "{}", updated.text().await.unwrap());
    // A refresh is recorded when the tools changed.
    tools.set(&["echo", "add"]);
    let refreshed = actor
        .post(format!("{services}/fx/refresh"))
        .header("x-request-id", request_id("refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    assert_eq!(refreshed.json::<Value>().await.unwrap()["changed"], true);
    let deleted = actor
        .delete(format!("{services}/fx"))
        .header("x-request-id", request_id("delete"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let created: Value = actor
        .post(&keys)
        .header("x-request-id", request_id("create-key"))
        .json(&json!({ "name": "audited", "permissions": ["registry:read"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let key_id = created["id"].as_str().unwrap().to_owned();
    let revoked = actor
        .delete(format!("{keys}/{key_id}"))
        .header("x-request-id", request_id("revoke-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);

    let audit_page = async |query: &str| -> Value {
        let response = app
            .http
            .get(format!("{}{AUDIT}{query}", app.registry_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{query}");
        let text = response.text().await.unwrap();
        for leaked in [&secret, &new_secret, &key] {
            assert!(
                !text.contains(leaked.as_str()),
                "the audit shows a secret: {text}"
            );
        }
        serde_json::from_str(&text).unwrap()
    };
    let page = audit_page("").await;
    let entries = page["entries"].as_array().unwrap();
    let expected = [
        ("api_key.revoked", key_id.as_str(), "revoke-key"),
        ("api_key.created", key_id.as_str(), "create-key"),
        ("service.deleted", "fx", "delete"),
        ("service.refreshed", "fx", "refresh"),
        ("service.updated", "fx", "update"),
        ("service.registered", "fx", "register"),
    ];
    let seen: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default(),
                e["target"].as_str().unwrap_or_default(),
                e["request_id"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let wanted: Vec<(&str, &str, String)> = expected
        .iter()
        .map(|(action, target, step)| (*action, *target, request_id(step)))
        .collect();
    assert_eq!(
        seen,
        wanted
            .iter()
            .map(|(a, t, r)| (*a, *t, r.as_str()))
            .collect::<Vec<_>>(),
        "newest first, each with its request id: {page:#}"
    );
    assert!(page.get("next_before").is_none(), "{page:#}");
    let ids: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    for entry in entries {
        assert_eq!(entry["actor"], sub.as_str(), "{entry:#}");
        assert_eq!(entry["actor_kind"], "user", "{entry:#}");
        assert_eq!(entry["client_addr"], "127.0.0.1", "{entry:#}");
        assert!(entry["occurred_at"].is_string(), "{entry:#}");
    }
    let details =
        |action: &str| &entries.iter().find(|e| e["action"] == action).unwrap()["details"];
    assert_eq!(details("service.registered")["tools"], 1);
    assert_eq!(details("service.updated")["description"], "second");
    assert_eq!(details("service.refreshed")["tools"], 2);
    assert_eq!(details("api_key.created")["name"], "audited");
    // The transports are recorded, without their secrets.
    assert_eq!(
        details("service.registered")["transport"]["type"],
        "stdio",
        "{page:#}"
    );
    assert!(
        details("service.registered")["transport"]["env"]
            .get("API_TOKEN")
            .is_some(),
        "{page:#}"
    );

    // Filtered by target.
    let fx = audit_page("?target=fx").await;
    let fx_actions: Vec<&str> = fx["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        fx_actions,
        [
            "service.deleted",
            "service.refreshed",
            "service.updated",
            "service.registered"
        ]
    );
    let by_key = audit_page(&format!("?target={key_id}")).await;
    assert_eq!(by_key["entries"].as_array().unwrap().len(), 2, "{by_key:#}");
    assert_eq!(audit_page("?target=nothing").await["entries"], json!([]));

    // Paged: the pages together are the whole trail, in order.
    let mut paged = Vec::new();
    let mut query = "?limit=4".to_owned();
    loop {
        let page = audit_page(&query).await;
        let got = page["entries"].as_array().unwrap();
        assert!(!got.is_empty() && got.len() <= 4, "{page:#}");
        paged.extend(got.iter().map(|e| e["id"].as_i64().unwrap()));
        match page["next_before"].as_i64() {
            Some(before) => {
                assert_eq!(Some(before), got.last().unwrap()["id"].as_i64());
                query = format!("?limit=4&before={before}");
            }
            None => break,
        }
    }
    assert_eq!(paged, ids);
    let two = audit_page("?limit=2").await;
    assert_eq!(two["entries"].as_array().unwrap().len(), 2);
    assert_eq!(two["next_before"], ids[1]);
    let rest = audit_page(&format!("?before={}", ids[1])).await;
    let rest_ids: Vec<i64> = rest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(rest_ids, ids[2..]);

    // The database never saw the secrets in the trail either.
    let stored = texts(&app, "SELECT details::text AS text FROM audit_log").await;
    assert_eq!(stored.len(), 6);
    for details in &stored {
        for leaked in [&secret, &new_secret, &key] {
            assert!(!details.contains(leaked.as_str()), "{details}");
        }
    }

    // Append-only, even for someone with SQL access to MCPO's own role.
    let mut conn = app.deps.pool.get().await.unwrap();
    for statement in [
        "DELETE FROM audit_log",
        "UPDATE audit_log SET actor = 'someone else'",
        "TRUNCATE audit_log",
    ] {
        let outcome = diesel::sql_query(statement).execute(&mut conn).await;
        assert!(outcome.is_err(), "`{statement}` worked: {outcome:?}");
    }
    drop(conn);
    let after = audit_page("").await;
    assert_eq!(after["entries"], page["entries"]);
}
