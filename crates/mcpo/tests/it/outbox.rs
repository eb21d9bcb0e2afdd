//! No event is lost between Postgres and NATS: while NATS is away, the
//! registry keeps working and its events wait in the outbox; when NATS is
//! back, each goes out exactly once.

use std::time::Duration;

use mcpo_core::events::{Event, EventBus, ToolsChange};
use mcpo_test_support::gate::TcpGate;
use mcpo_test_support::TestApp;
use serde_json::Value;

use crate::stdio_fixture;

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    // The relay backs off up to 5 s between tries, on top of NATS timeouts.
    mcpo_test_support::eventually_within(what, Duration::from_secs(30), async || {
        done().await.then_some(()).ok_or(())
    })
    .await
}

#[tokio::test]
async fn events_written_while_nats_is_down_are_delivered_once_when_it_returns() {
    let gate = TcpGate::start("127.0.0.1:4222".parse().unwrap()).await;
    let app =
        TestApp::spawn_with(|settings| settings.nats.url = format!("nats://{}", gate.addr)).await;
    // A bus of our own, straight to NATS, to read what reached the stream.
    let direct = EventBus::connect(&app.direct_nats()).await.unwrap();

    gate.close();
    wait_until("the services see NATS gone", async || {
        !app.deps.bus.is_connected()
    })
    .await;

    // The API works without NATS: register, refresh, delete.
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    let ready: Value = app.registry_get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["nats"], "not connected");
    let deleted = app.delete_service("fx").await;
    assert_eq!(deleted.status(), 204);
    // The registry's three, and perhaps the publisher's first openapi.published.
    assert!(mcpo_core::outbox::pending(&app.deps.pool).await.unwrap() >= 3);
    // The relay is trying, and failing, and says why.
    wait_until("the relay records a failed attempt", async || {
        failed_attempts(&app).await > 0
    })
    .await;
    let before: Vec<_> = direct.stored_events().await.unwrap();
    assert!(
        before
            .iter()
            .all(|e| matches!(e.event, Event::OpenapiPublished(_))),
        "{before:?}"
    );

    gate.open();
    wait_until("the outbox is empty", async || {
        mcpo_core::outbox::pending(&app.deps.pool).await.unwrap() == 0
    })
    .await;

    // The registry's events (the publisher announces its versions too).
    let events: Vec<_> = direct
        .stored_events()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| !matches!(e.event, Event::OpenapiPublished(_)))
        .collect();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match &e.event {
            Event::ToolsUpdated(u) => format!("tools.{:?}", u.change).to_lowercase(),
            other => other.subject_suffix().to_owned(),
        })
        .collect();
    assert_eq!(
        kinds,
        ["service.registered", "tools.registered", "tools.deleted"],
        "each event once, in order"
    );
    let mut ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    assert!(matches!(&events[2].event, Event::ToolsUpdated(u) if u.change == ToolsChange::Deleted));
}

async fn failed_attempts(app: &TestApp) -> i64 {
    count(
        app,
        "SELECT count(*) AS n FROM event_outbox WHERE last_error IS NOT NULL AND published_at IS NULL",
    )
    .await
}

/// Runs `sql` (a count named `n`) against the app's database.
async fn count(app: &TestApp, sql: &str) -> i64 {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.deps.pool.get().await.unwrap();
    diesel::sql_query(sql)
        .get_result::<Count>(&mut conn)
        .await
        .unwrap()
        .n
}

async fn execute(app: &TestApp, sql: &str) -> usize {
    use diesel_async::RunQueryDsl;
    let mut conn = app.deps.pool.get().await.unwrap();
    diesel::sql_query(sql).execute(&mut conn).await.unwrap()
}

async fn all_published(app: &TestApp) {
    wait_until("the outbox is published", async || {
        mcpo_core::outbox::pending(&app.deps.pool).await.unwrap() == 0
    })
    .await;
}

#[tokio::test]
async fn published_events_past_the_retention_are_pruned_and_unpublished_ones_stay() {
    let app = TestApp::spawn().await;
    // A row the relay cannot read: it stays unpublished, however old.
    execute(
        &app,
        "INSERT INTO event_outbox (id, subject, payload, created_at) \
         VALUES (gen_random_uuid(), 'x', '{\"not\": \"an event\"}', now() - interval '30 days')",
    )
    .await;
    assert_eq!(
        app.register(&stdio_fixture("old", None)).await.status(),
        201
    );
    wait_until("only the unreadable row is left unpublished", async || {
        mcpo_core::outbox::pending(&app.deps.pool).await.unwrap() == 1
    })
    .await;
    let old = execute(
        &app,
        "UPDATE event_outbox SET published_at = now() - interval '2 days' \
         WHERE published_at IS NOT NULL",
    )
    .await;
    assert!(old >= 2, "service.registered and tools.registered at least");
    assert_eq!(
        app.register(&stdio_fixture("new", None)).await.status(),
        201
    );
    wait_until("the new service's events are published", async || {
        count(
            &app,
            "SELECT count(*) AS n FROM event_outbox WHERE published_at > now() - interval '1 hour'",
        )
        .await
            >= 2
    })
    .await;
    let recent = count(
        &app,
        "SELECT count(*) AS n FROM event_outbox WHERE published_at > now() - interval '1 hour'",
    )
    .await;

    let pruned = mcpo_core::outbox::prune_published(&app.deps.pool, Duration::from_secs(86_400))
        .await
        .unwrap();
    assert_eq!(pruned, old);
    let older =
        "SELECT count(*) AS n FROM event_outbox WHERE published_at < now() - interval '1 day'";
    assert_eq!(count(&app, older).await, 0);
    // The recent events stay (the publisher may have added more meanwhile).
    let kept =
        "SELECT count(*) AS n FROM event_outbox WHERE published_at > now() - interval '1 hour'";
    assert!(count(&app, kept).await >= recent);
    let unreadable = "SELECT count(*) AS n FROM event_outbox WHERE payload = '{\"not\": \"an event\"}'::jsonb AND published_at IS NULL";
    assert_eq!(count(&app, unreadable).await, 1);
}

#[tokio::test]
async fn the_leading_relay_prunes_on_its_own() {
    let app =
        TestApp::spawn_with(|settings| settings.outbox_retention = Duration::from_secs(1)).await;
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    all_published(&app).await;
    wait_until("the published rows are pruned", async || {
        count(&app, "SELECT count(*) AS n FROM event_outbox").await == 0
    })
    .await;
    // Events still flow after a prune.
    assert_eq!(app.delete_service("fx").await.status(), 204);
    all_published(&app).await;
}
