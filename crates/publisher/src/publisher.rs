//! The current document, rebuilt from Postgres on start and on every
//! `tools.updated` event, served from memory.

use std::sync::{Arc, RwLock};

use futures::StreamExt;
use mcpo_core::config::ApiGatewayAuthorizer;
use mcpo_core::db::{queries, DbPool};
use mcpo_core::events::EventEnvelope;
use mcpo_core::CoreError;

use crate::published::{self, Published};
use crate::versions;
use tokio::sync::Notify;

pub struct Publisher {
    pool: DbPool,
    executor_url: String,
    apigateway_authorizer: Option<ApiGatewayAuthorizer>,
    /// How many versions stay stored.
    versions_kept: i64,
    outbox_wake: Arc<Notify>,
    current: RwLock<Arc<Published>>,
    /// The version of `current`, for the push targets to follow.
    version: tokio::sync::watch::Sender<i64>,
}

impl Publisher {
    pub async fn start(
        pool: DbPool,
        executor_url: String,
        apigateway_authorizer: Option<ApiGatewayAuthorizer>,
        versions_kept: i64,
        outbox_wake: Arc<Notify>,
    ) -> Result<Arc<Publisher>, CoreError> {
        let publisher = Arc::new(Publisher {
            pool,
            versions_kept,
            executor_url,
            apigateway_authorizer,
            outbox_wake,
            current: RwLock::new(Arc::new(Published::empty())),
            version: tokio::sync::watch::Sender::new(0),
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

    /// Changes whenever the served version does.
    pub fn versions(&self) -> tokio::sync::watch::Receiver<i64> {
        self.version.subscribe()
    }

    pub fn versions_kept(&self) -> i64 {
        self.versions_kept
    }

    /// A stored version of the platform document.
    pub async fn stored(&self, version: i64) -> Result<Option<serde_json::Value>, CoreError> {
        versions::load(&mut *self.pool.get().await?, version).await
    }

    pub async fn rebuild(&self) -> Result<(), CoreError> {
        let mut conn = self.pool.get().await?;
        let services = queries::all_services(&mut conn).await?;
        // Building and rendering take seconds for thousands of
        // tools: on the blocking pool, not on a thread that serves requests.
        let executor_url = self.executor_url.clone();
        let authorizer = self.apigateway_authorizer.clone();
        let services_count = services.len();
        let prepared = blocking(move || {
            Ok(published::prepare(
                &services,
                &executor_url,
                authorizer.as_ref(),
            ))
        })
        .await?;
        let built = versions::Built {
            hash: &prepared.hash,
            service_count: services_count,
            path_count: prepared.path_count(),
        };
        let (version, new) = versions::record(&mut conn, built, self.versions_kept, |version| {
            prepared.json(version)
        })
        .await?;
        drop(conn);
        if new {
            self.outbox_wake.notify_one();
        }
        let published = blocking(move || Ok(published::render(version, prepared))).await?;
        let services = services_count;
        tracing::info!(services, version, new, "document rebuilt");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(published);
        // After the swap, so whoever wakes reads the new document.
        self.version
            .send_if_modified(|v| std::mem::replace(v, version) != version);
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

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CoreError> + Send + 'static,
) -> Result<T, CoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| CoreError::Internal(format!("document build failed: {e}")))?
}
