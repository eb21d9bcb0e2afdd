//! The current document, rebuilt from Postgres on start and on every
//! `tools.updated` event, served from memory.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use mcpo_core::db::{queries, DbPool};
use mcpo_core::events::EventEnvelope;
use mcpo_core::CoreError;
use sha2::{Digest, Sha256};

use crate::{document, versions};
use tokio::sync::Notify;

/// One document, rendered: its bytes and their hash (the `ETag`).
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub etag: String,
}

impl Rendered {
    pub fn new(bytes: Vec<u8>) -> Rendered {
        let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&bytes)[..16]));
        Rendered { bytes, etag }
    }
}

/// Everything served, from one rebuild: the platform document as JSON and
/// YAML, and one JSON document per service.
pub struct Published {
    /// The stored version this is (`info.version`).
    pub version: i64,
    pub json: Rendered,
    pub yaml: Rendered,
    pub by_service: HashMap<String, Rendered>,
}

pub struct Publisher {
    pool: DbPool,
    executor_url: String,
    outbox_wake: Arc<Notify>,
    current: RwLock<Arc<Published>>,
}

impl Publisher {
    pub async fn start(
        pool: DbPool,
        executor_url: String,
        outbox_wake: Arc<Notify>,
    ) -> Result<Arc<Publisher>, CoreError> {
        let publisher = Arc::new(Publisher {
            pool,
            executor_url,
            outbox_wake,
            current: RwLock::new(Arc::new(Published {
                version: 0,
                json: Rendered::new(Vec::new()),
                yaml: Rendered::new(Vec::new()),
                by_service: HashMap::new(),
            })),
        });
        publisher.rebuild().await?;
        Ok(publisher)
    }

    pub fn current(&self) -> Arc<Published> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A stored version of the platform document.
    pub async fn stored(&self, version: i64) -> Result<Option<serde_json::Value>, CoreError> {
        versions::load(&mut *self.pool.get().await?, version).await
    }

    pub async fn rebuild(&self) -> Result<(), CoreError> {
        let mut conn = self.pool.get().await?;
        let services = queries::all_services(&mut conn).await?;
        let render = |doc: &serde_json::Value| {
            serde_json::to_vec_pretty(doc).map_err(|e| CoreError::Internal(e.to_string()))
        };
        let mut doc = document::build(&services, &self.executor_url);
        let (version, new) = versions::record(&mut conn, &mut doc, services.len()).await?;
        drop(conn);
        if new {
            self.outbox_wake.notify_one();
        }
        let yaml =
            serde_yaml_ng::to_string(&doc).map_err(|e| CoreError::Internal(e.to_string()))?;
        let mut by_service = HashMap::new();
        for service in &services {
            let mut one = document::build(std::slice::from_ref(service), &self.executor_url);
            one["info"]["version"] = service.service.revision.to_string().into();
            by_service.insert(service.service.name.clone(), Rendered::new(render(&one)?));
        }
        let published = Published {
            version,
            json: Rendered::new(render(&doc)?),
            yaml: Rendered::new(yaml.into_bytes()),
            by_service,
        };
        tracing::info!(services = services.len(), version, new, "document rebuilt");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(published);
        Ok(())
    }

    /// Rebuilds after each event; events that queued up meanwhile are taken
    /// together, since one rebuild reads everything anyway.
    pub async fn follow(
        self: Arc<Self>,
        events: impl futures::Stream<Item = EventEnvelope> + Send + 'static,
    ) {
        let events = events.ready_chunks(64);
        futures::pin_mut!(events);
        while events.next().await.is_some() {
            if let Err(e) = self.rebuild().await {
                tracing::error!(error = %e, "cannot rebuild the document");
            }
        }
    }
}
