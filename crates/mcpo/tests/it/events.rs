use futures::StreamExt;
use mcpo_core::events::{Event, ToolsChange};
use mcpo_test_support::TestApp;

use crate::stdio_fixture;

#[tokio::test]
async fn registration_refresh_and_delete_are_announced() {
    let app = TestApp::spawn().await;
    let events = app
        .deps
        .bus
        .subscribe(&["service.registered", "tools.updated"])
        .await
        .unwrap();
    futures::pin_mut!(events);

    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    let deleted = app.delete_service("fx").await;
    assert_eq!(deleted.status(), 204);

    let mut received = Vec::new();
    while received.len() < 3 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), events.next()).await;
        received.push(event.expect("event arrives").unwrap());
    }
    let [first, second, third] = <[_; 3]>::try_from(received).unwrap();
    let Event::ServiceRegistered(registered) = first.event.clone() else {
        panic!("{first:?}")
    };
    assert_eq!(registered.service_name, "fx");
    assert_eq!(registered.tool_count, 4);
    assert_eq!(registered.transport, "stdio");

    let Event::ToolsUpdated(updated) = second.event.clone() else {
        panic!("{second:?}")
    };
    assert_eq!(updated.change, ToolsChange::Registered);
    assert_eq!(updated.revision, 1);
    let mut tools = updated.tools.clone();
    tools.sort();
    assert_eq!(tools, ["add", "echo", "fail", "slow"]);

    let Event::ToolsUpdated(removed) = third.event else {
        panic!("{third:?}")
    };
    assert_eq!(removed.change, ToolsChange::Deleted);
    assert_eq!(removed.service_id, registered.service_id);
    assert!(removed.tools.is_empty());
    assert_ne!(first.event_id, second.event_id);
}

/// A subscriber gets only the kinds it asked for, on any NATS version (before
/// 2.10 the server ignores a consumer's list of subjects).
#[tokio::test]
async fn a_subscription_sees_only_the_kinds_it_asked_for() {
    let app = TestApp::spawn().await;
    let events = app.deps.bus.subscribe(&["tools.updated"]).await.unwrap();
    futures::pin_mut!(events);
    assert_eq!(app.register(&stdio_fixture("fx", None)).await.status(), 201);
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(first.event, Event::ToolsUpdated(_)),
        "service.registered came first but was not asked for: {first:?}"
    );
}
