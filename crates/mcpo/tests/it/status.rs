//! The status monitor: a server that goes away shows `unreachable`, and
//! `active` again when it returns; each change is announced once.

use std::time::Duration;

use mcpo_core::events::{Event, ToolsChange};
use mcpo_test_support::{eventually, tool_names, FixtureHttp, TestApp};
use serde_json::{json, Value};

use crate::stdio_fixture;

async fn wait_for_status(app: &TestApp, name: &str, status: &str) -> Value {
    eventually(&format!("{name} is {status}"), async || {
        let service = app.service(name).await;
        if service["status"] == status {
            Ok(service)
        } else {
            Err(service)
        }
    })
    .await
}

#[tokio::test]
async fn a_server_that_goes_away_is_unreachable_and_active_again_when_back() {
    let app =
        TestApp::spawn_with(|settings| settings.status_interval = Some(Duration::from_millis(300)))
            .await;
    let fixture = FixtureHttp::start(None).await;
    let addr = fixture.addr();
    let registered = app
        .register(&json!({ "name": "web", "transport": fixture.transport() }))
        .await;
    assert_eq!(registered.status(), 201);
    assert_eq!(
        app.register(&stdio_fixture("off", None)).await.status(),
        201
    );
    let disabled = app.patch_service("off", &json!({ "enabled": false })).await;
    assert_eq!(disabled.status(), 200);

    let seen = wait_for_status(&app, "web", "active").await;
    assert!(seen["last_seen_at"].is_string(), "{seen:#}");
    let revision = seen["revision"].clone();

    drop(fixture);
    let down = wait_for_status(&app, "web", "unreachable").await;
    assert!(
        down["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{down:#}"
    );
    assert_eq!(
        down["revision"], revision,
        "observed status is not a configuration change"
    );

    let _back = FixtureHttp::start_on(addr, None).await;
    let up = wait_for_status(&app, "web", "active").await;
    assert_eq!(up["last_error"], Value::Null);

    // The monitor leaves a disabled service alone.
    assert_eq!(app.service("off").await["status"], "disabled");

    let changes = app
        .wait_for_events(
            "both status changes are in the stream",
            |event| match event {
                Event::ServiceStatusChanged(c) if c.service_name == "web" => {
                    Some((c.previous, c.status))
                }
                _ => None,
            },
            |changes| changes.len() >= 2,
        )
        .await;
    let expected = [("active", "unreachable"), ("unreachable", "active")]
        .map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert_eq!(changes[..2], expected, "{changes:?}");
    // A loaded machine may miss a later check's deadline (half the interval,
    // here its floor of 200 ms), which is a real change again; but each
    // change is announced once: every event starts where the last one ended.
    for pair in changes.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "{changes:?}");
    }
    assert!(changes.iter().all(|(from, to)| from != to), "{changes:?}");
}

#[tokio::test]
async fn a_server_announcing_tool_changes_is_relisted_without_a_refresh() {
    let app =
        TestApp::spawn_with(|settings| settings.status_interval = Some(Duration::from_millis(300)))
            .await;
    let tools = mcpo_test_support::ToolsFile::new(&["echo"]);
    let mut registration = stdio_fixture("live", Some(&tools.path));
    registration["transport"]["args"]
        .as_array_mut()
        .unwrap()
        .push(json!("--announce-tool-changes"));
    assert_eq!(app.register(&registration).await.status(), 201);

    // Each change reaches the registry through the monitor's session alone:
    // nobody calls refresh.
    for expected in [vec!["add", "echo"], vec!["add", "echo", "reverse"]] {
        tools.set(&expected);
        eventually(&format!("the registry lists {expected:?}"), async || {
            let service = app.service("live").await;
            if tool_names(&service) == expected {
                Ok(())
            } else {
                Err(service)
            }
        })
        .await;
    }

    let updates = app
        .wait_for_events(
            "two tools.updated events",
            |event| match event {
                Event::ToolsUpdated(u)
                    if u.service_name == "live" && u.change == ToolsChange::Refreshed =>
                {
                    let mut tools = u.tools;
                    tools.sort();
                    Some(tools)
                }
                _ => None,
            },
            |updates| updates.len() >= 2,
        )
        .await;
    assert_eq!(
        updates,
        [vec!["add", "echo"], vec!["add", "echo", "reverse"]]
    );

    let audit: Value = app
        .registry_get("/api/v1/mcpo/audit?target=live")
        .await
        .json()
        .await
        .unwrap();
    let relists = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["action"] == "service.refreshed" && row["actor_kind"] == "system")
        .count();
    assert!(relists >= 2, "{audit:#}");
}
