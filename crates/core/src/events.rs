//! Events between services, carried on NATS JetStream. Every subject starts
//! with the configured prefix (`mcpo.tools.updated`), all of them are kept in
//! one stream, and each message carries its event id as `Nats-Msg-Id` so
//! JetStream drops duplicates of a re-sent event.

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use async_nats::jetstream::{self, consumer, stream};

use crate::config::NatsSettings;
use crate::error::CoreError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    pub event_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    #[serde(rename = "service.registered")]
    ServiceRegistered(ServiceRegistered),
    #[serde(rename = "tools.updated")]
    ToolsUpdated(ToolsUpdated),
    #[serde(rename = "service.updated")]
    ServiceUpdated(ServiceUpdated),
    #[serde(rename = "service.status_changed")]
    ServiceStatusChanged(ServiceStatusChanged),
    #[serde(rename = "openapi.published")]
    OpenapiPublished(OpenapiPublished),
}

/// The publisher stored a new version of the platform document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenapiPublished {
    pub version: i64,
    pub content_hash: String,
    pub service_count: usize,
    pub path_count: usize,
}

/// The status monitor saw a service become reachable or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatusChanged {
    pub service_id: Uuid,
    pub service_name: String,
    pub previous: String,
    pub status: String,
    pub last_error: Option<String>,
}

/// A service's settings changed (description, transport, enabled); when its
/// tools changed too, a `tools.updated` event follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceUpdated {
    pub service_id: Uuid,
    pub service_name: String,
    pub revision: i64,
    pub status: String,
}

/// A new service was stored with its tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRegistered {
    pub service_id: Uuid,
    pub service_name: String,
    pub revision: i64,
    pub transport: String,
    pub tool_count: usize,
}

/// The tool set of a service changed: it was registered, refreshed with a
/// different list, or deleted. Consumers reload that service from Postgres.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolsUpdated {
    pub service_id: Uuid,
    pub service_name: String,
    pub revision: i64,
    pub change: ToolsChange,
    /// Endpoint names of the tools after the change (empty when deleted).
    pub tools: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolsChange {
    Registered,
    /// Re-listed on refresh, or after a transport change.
    Refreshed,
    Deleted,
}

impl Event {
    /// The subject after the prefix.
    pub fn subject_suffix(&self) -> &'static str {
        match self {
            Event::ServiceRegistered(_) => "service.registered",
            Event::ToolsUpdated(_) => "tools.updated",
            Event::ServiceUpdated(_) => "service.updated",
            Event::ServiceStatusChanged(_) => "service.status_changed",
            Event::OpenapiPublished(_) => "openapi.published",
        }
    }
}

impl EventEnvelope {
    pub fn new(event: Event) -> Self {
        EventEnvelope {
            event_id: Uuid::now_v7(),
            occurred_at: Utc::now(),
            event,
        }
    }
}

#[derive(Clone)]
pub struct EventBus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    prefix: String,
    stream: String,
    stream_ready: std::sync::Arc<tokio::sync::OnceCell<()>>,
    /// Counts connections to NATS (the first included): followers that see
    /// it change resync from Postgres, since events may have been missed.
    connections: tokio::sync::watch::Receiver<u64>,
}

impl EventBus {
    /// Connects in the background: a process can start while NATS is down
    /// and the client reconnects by itself. The stream is created on first use.
    pub async fn connect(settings: &NatsSettings) -> Result<EventBus, CoreError> {
        let (counter, connections) = tokio::sync::watch::channel(0u64);
        let counter = std::sync::Arc::new(counter);
        let client = async_nats::ConnectOptions::new()
            .event_callback(move |event| {
                let counter = counter.clone();
                async move {
                    if matches!(event, async_nats::Event::Connected) {
                        counter.send_modify(|n| *n += 1);
                    }
                }
            })
            .connection_timeout(std::time::Duration::from_secs(5))
            .retry_on_initial_connect()
            .name("mcpo")
            .connect(settings.url.as_str())
            .await
            .map_err(|e| {
                CoreError::Events(format!("cannot connect to NATS at {}: {e}", settings.url))
            })?;
        let jetstream = jetstream::new(client.clone());
        Ok(EventBus {
            client,
            jetstream,
            prefix: settings.subject_prefix.clone(),
            stream: settings.stream.clone(),
            stream_ready: Default::default(),
            connections,
        })
    }

    /// Changes each time the client (re)connects to NATS.
    pub fn connections(&self) -> tokio::sync::watch::Receiver<u64> {
        self.connections.clone()
    }

    /// Creates the stream unless this bus already made sure it exists.
    pub async fn ensure_stream(&self) -> Result<(), CoreError> {
        self.stream_ready
            .get_or_try_init(|| async {
                self.jetstream
                    .get_or_create_stream(stream::Config {
                        name: self.stream.clone(),
                        subjects: vec![format!("{}.>", self.prefix)],
                        max_age: std::time::Duration::from_secs(7 * 24 * 3600),
                        duplicate_window: std::time::Duration::from_secs(120),
                        ..Default::default()
                    })
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        CoreError::Events(format!("cannot create stream {}: {e}", self.stream))
                    })
            })
            .await
            .map(|_| ())
    }

    pub fn subject(&self, event: &Event) -> String {
        format!("{}.{}", self.prefix, event.subject_suffix())
    }

    /// Publishes and waits for JetStream's acknowledgement.
    pub async fn publish(&self, envelope: &EventEnvelope) -> Result<(), CoreError> {
        self.ensure_stream().await?;
        let payload =
            serde_json::to_vec(envelope).map_err(|e| CoreError::Internal(e.to_string()))?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            envelope.event_id.to_string().as_str(),
        );
        let ack = self
            .jetstream
            .publish_with_headers(self.subject(&envelope.event), headers, payload.into())
            .await
            .map_err(|e| CoreError::Events(e.to_string()))?;
        ack.await.map_err(|e| CoreError::Events(e.to_string()))?;
        Ok(())
    }

    /// Events of the given kinds published from now on. Each caller gets its
    /// own ordered consumer, so every replica sees every event.
    pub async fn subscribe(
        &self,
        subject_suffixes: &[&str],
    ) -> Result<impl Stream<Item = EventEnvelope> + Send + 'static, CoreError> {
        self.ensure_stream().await?;
        let stream = self
            .jetstream
            .get_stream(&self.stream)
            .await
            .map_err(|e| CoreError::Events(e.to_string()))?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subjects: subject_suffixes
                    .iter()
                    .map(|s| format!("{}.{s}", self.prefix))
                    .collect(),
                deliver_policy: consumer::DeliverPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(|e| CoreError::Events(e.to_string()))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| CoreError::Events(e.to_string()))?;
        // NATS before 2.10 ignores `filter_subjects`: filter here as well.
        let wanted: Vec<String> = subject_suffixes.iter().map(|s| (*s).to_owned()).collect();
        Ok(messages.filter_map(move |message| {
            let wanted = wanted.clone();
            async move {
                let envelope = parse_message(message)?;
                wanted
                    .iter()
                    .any(|w| w == envelope.event.subject_suffix())
                    .then_some(envelope)
            }
        }))
    }
}

/// The event in a stream message; errors and unparseable payloads are logged
/// and skipped.
fn parse_message(
    message: Result<jetstream::Message, consumer::pull::OrderedError>,
) -> Option<EventEnvelope> {
    let message = match message {
        Ok(message) => message,
        Err(e) => {
            tracing::warn!(error = %e, "event stream error");
            return None;
        }
    };
    match serde_json::from_slice::<EventEnvelope>(&message.payload) {
        Ok(envelope) => Some(envelope),
        Err(e) => {
            tracing::warn!(error = %e, subject = %message.subject, "ignoring an event that does not parse");
            None
        }
    }
}

impl EventBus {
    /// Every event the stream holds, oldest first (operators and tests use it
    /// to see what was published).
    pub async fn stored_events(&self) -> Result<Vec<EventEnvelope>, CoreError> {
        self.ensure_stream().await?;
        let mut stream = self
            .jetstream
            .get_stream(&self.stream)
            .await
            .map_err(|e| CoreError::Events(e.to_string()))?;
        let state = stream
            .info()
            .await
            .map_err(|e| CoreError::Events(e.to_string()))?
            .state
            .clone();
        let mut events = Vec::new();
        for sequence in state.first_sequence..=state.last_sequence {
            if state.messages == 0 {
                break;
            }
            let message = match stream.get_raw_message(sequence).await {
                Ok(message) => message,
                Err(_) => continue, // deleted or expired
            };
            if let Ok(envelope) = serde_json::from_slice(&message.payload) {
                events.push(envelope);
            }
        }
        Ok(events)
    }

    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Removes the stream; tests use it to leave nothing behind.
    pub async fn delete_stream(&self) -> Result<(), CoreError> {
        self.jetstream
            .delete_stream(&self.stream)
            .await
            .map_err(|e| CoreError::Events(e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_json_shape() {
        let envelope = EventEnvelope::new(Event::ToolsUpdated(ToolsUpdated {
            service_id: Uuid::nil(),
            service_name: "fx".into(),
            revision: 3,
            change: ToolsChange::Refreshed,
            tools: vec!["echo".into()],
        }));
        let json = serde_json::to_value(&envelope).unwrap();
        assert_eq!(json["type"], "tools.updated");
        assert_eq!(json["change"], "refreshed");
        assert_eq!(json["service_name"], "fx");
        assert_eq!(
            serde_json::from_value::<EventEnvelope>(json).unwrap(),
            envelope
        );
    }
}
