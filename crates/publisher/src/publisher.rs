//! The current document, rebuilt from Postgres on start and on every
//! `tools.updated` event, served from memory.

use std::sync::{Arc, RwLock};

use futures::StreamExt;
use mcpo_core::db::{queries, DbPool};
use mcpo_core::events::EventEnvelope;
use mcpo_core::CoreError;
use sha2::{Digest, Sha256};

use crate::document;

/// A built document: its bytes and their hash (the `ETag`).
pub struct Published {
    pub json: Vec<u8>,
    pub etag: String,
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
                json: Vec::new(),
                etag: String::new(),
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
        let doc = document::build(&services, &self.executor_url);
        let json =
            serde_json::to_vec_pretty(&doc).map_err(|e| CoreError::Internal(e.to_string()))?;
        let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&json)[..16]));
        tracing::info!(services = services.len(), etag = %etag, "document rebuilt");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Published { json, etag });
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
