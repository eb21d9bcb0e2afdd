//! The current document, rebuilt from Postgres on start and on every
//! `tools.updated` event, served from memory.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use mcpo_core::db::{queries, DbPool};
use mcpo_core::events::EventEnvelope;
use mcpo_core::CoreError;
use sha2::{Digest, Sha256};

use crate::document;

/// One document, rendered: its bytes and their hash (the `ETag`).
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub etag: String,
}

impl Rendered {
    fn new(bytes: Vec<u8>) -> Rendered {
        let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&bytes)[..16]));
        Rendered { bytes, etag }
    }
}

/// Everything served, from one rebuild: the platform document as JSON and
/// YAML, and one JSON document per service.
pub struct Published {
    pub json: Rendered,
    pub yaml: Rendered,
    pub by_service: HashMap<String, Rendered>,
}

pub struct Publisher {
    pool: DbPool,
    executor_url: String,
    current: RwLock<Arc<Published>>,
}

impl Publisher {
    pub async fn start(pool: DbPool, executor_url: String) -> Result<Arc<Publisher>, CoreError> {
        let publisher = Arc::new(Publisher {
            pool,
            executor_url,
            current: RwLock::new(Arc::new(Published {
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

    pub async fn rebuild(&self) -> Result<(), CoreError> {
        let services = queries::all_services(&mut *self.pool.get().await?).await?;
        let render = |doc: &serde_json::Value| {
            serde_json::to_vec_pretty(doc).map_err(|e| CoreError::Internal(e.to_string()))
        };
        let doc = document::build(&services, &self.executor_url);
        let yaml =
            serde_yaml_ng::to_string(&doc).map_err(|e| CoreError::Internal(e.to_string()))?;
        let mut by_service = HashMap::new();
        for service in &services {
            let one = document::build(std::slice::from_ref(service), &self.executor_url);
            by_service.insert(service.service.name.clone(), Rendered::new(render(&one)?));
        }
        let published = Published {
            json: Rendered::new(render(&doc)?),
            yaml: Rendered::new(yaml.into_bytes()),
            by_service,
        };
        tracing::info!(services = services.len(), etag = %published.json.etag, "document rebuilt");
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
