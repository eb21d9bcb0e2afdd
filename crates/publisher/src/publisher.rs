//! The current document, rebuilt from Postgres on start and on every
//! `tools.updated` event, served from memory.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use mcpo_core::config::ApiGatewayAuthorizer;
use mcpo_core::db::{queries, DbPool};
use mcpo_core::events::EventEnvelope;
use mcpo_core::CoreError;
use sha2::{Digest, Sha256};

use crate::{aws, document, versions};
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
/// YAML, its API Gateway flavour, and one JSON document per service.
pub struct Published {
    /// The stored version this is (`info.version`).
    pub version: i64,
    pub json: Rendered,
    pub yaml: Rendered,
    /// The API Gateway flavour (OpenAPI 3.0.1) of the platform document.
    pub aws: Rendered,
    pub by_service: HashMap<String, Rendered>,
}

pub struct Publisher {
    pool: DbPool,
    executor_url: String,
    apigateway_authorizer: Option<ApiGatewayAuthorizer>,
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
        outbox_wake: Arc<Notify>,
    ) -> Result<Arc<Publisher>, CoreError> {
        let publisher = Arc::new(Publisher {
            pool,
            executor_url,
            apigateway_authorizer,
            outbox_wake,
            current: RwLock::new(Arc::new(Published {
                version: 0,
                json: Rendered::new(Vec::new()),
                yaml: Rendered::new(Vec::new()),
                aws: Rendered::new(Vec::new()),
                by_service: HashMap::new(),
            })),
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

    /// A stored version of the platform document.
    pub async fn stored(&self, version: i64) -> Result<Option<serde_json::Value>, CoreError> {
        versions::load(&mut *self.pool.get().await?, version).await
    }

    pub async fn rebuild(&self) -> Result<(), CoreError> {
        let mut conn = self.pool.get().await?;
        let services = queries::all_services(&mut conn).await?;
        // Building and rendering take a second or more for thousands of
        // tools: on the blocking pool, not on a thread that serves requests.
        let executor_url = self.executor_url.clone();
        let (mut doc, services) = blocking(move || {
            let doc = document::build(&services, &executor_url);
            Ok((doc, services))
        })
        .await?;
        let (version, new) = versions::record(&mut conn, &mut doc, services.len()).await?;
        drop(conn);
        if new {
            self.outbox_wake.notify_one();
        }
        let executor_url = self.executor_url.clone();
        let authorizer = self.apigateway_authorizer.clone();
        let service_count = services.len();
        let published = blocking(move || {
            render_all(version, &doc, &services, &executor_url, authorizer.as_ref())
        })
        .await?;
        let services = service_count;
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

/// Every rendering of one version: JSON, YAML, the API Gateway flavour, and
/// one document per service.
fn render_all(
    version: i64,
    doc: &serde_json::Value,
    services: &[mcpo_core::db::queries::ServiceRecord],
    executor_url: &str,
    authorizer: Option<&ApiGatewayAuthorizer>,
) -> Result<Published, CoreError> {
    let render = |doc: &serde_json::Value| {
        serde_json::to_vec_pretty(doc).map_err(|e| CoreError::Internal(e.to_string()))
    };
    let yaml = serde_yaml_ng::to_string(doc).map_err(|e| CoreError::Internal(e.to_string()))?;
    // Rendered at once: the tree is large, and not needed after.
    let aws = Rendered::new(render(&aws::convert(doc, authorizer))?);
    let mut by_service = HashMap::new();
    for service in services {
        let mut one = document::build(std::slice::from_ref(service), executor_url);
        one["info"]["version"] = service.service.revision.to_string().into();
        by_service.insert(service.service.name.clone(), Rendered::new(render(&one)?));
    }
    Ok(Published {
        version,
        json: Rendered::new(render(doc)?),
        yaml: Rendered::new(yaml.into_bytes()),
        aws,
        by_service,
    })
}
