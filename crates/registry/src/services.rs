//! What the registry does, without HTTP: validate, discover, store, announce.

use std::sync::Arc;
use std::time::Duration;

use mcpo_core::db::models::ServiceRow;
use mcpo_core::db::queries::{self, ServiceRecord};
use mcpo_core::db::DbPool;
use mcpo_core::domain::naming::validate_service_name;
use mcpo_core::domain::{ServiceView, TransportConfig};
use mcpo_core::events::{Event, EventEnvelope, ServiceRegistered, ToolsChange, ToolsUpdated};
use mcpo_core::mcp;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::error::RegistryError;
use crate::store::{self, NewService};

const MAX_DESCRIPTION_LEN: usize = 4096;

/// What a registry operation needs.
#[derive(Clone)]
pub struct Registry {
    pub pool: DbPool,
    /// Wakes the outbox relay after a commit so events go out at once.
    pub outbox_wake: Arc<Notify>,
    /// The executor's public URL, the base of every tool endpoint we answer with.
    pub endpoint_base: String,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterService {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub transport: TransportConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshOutcome {
    /// Whether the tool list differed from the stored one.
    pub changed: bool,
    pub service: ServiceView,
}

impl RegisterService {
    fn validate(&self) -> Result<(), RegistryError> {
        validate_service_name(&self.name)
            .map_err(|problem| RegistryError::invalid("name", problem))?;
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.len() > MAX_DESCRIPTION_LEN)
        {
            return Err(RegistryError::invalid(
                "description",
                format!("must be at most {MAX_DESCRIPTION_LEN} bytes"),
            ));
        }
        self.transport
            .validate()
            .map_err(|(field, problem)| RegistryError::invalid(field, problem))
    }
}

impl Registry {
    pub fn new(settings: &mcpo_core::Settings, pool: DbPool, outbox_wake: Arc<Notify>) -> Self {
        Registry {
            pool,
            outbox_wake,
            endpoint_base: settings.executor_public_url.clone(),
            connect_timeout: settings.mcp_connect_timeout,
        }
    }

    /// Registers a server: nothing is stored unless it initializes and lists
    /// its tools. No database connection is held while we talk to the server.
    #[tracing::instrument(skip_all, fields(service = %request.name, transport = request.transport.kind()))]
    pub async fn register(&self, request: RegisterService) -> Result<ServiceView, RegistryError> {
        request.validate()?;
        if store::service_exists(&mut *self.pool.get().await?, &request.name).await? {
            return Err(RegistryError::NameTaken(request.name));
        }
        let discovered =
            mcp::discover(&request.transport, self.connect_timeout, &request.name).await?;
        let new = NewService {
            name: &request.name,
            description: request.description.as_deref(),
            transport: &request.transport,
        };
        let transport = request.transport.kind();
        let events = |record: &ServiceRecord| {
            vec![
                EventEnvelope::new(Event::ServiceRegistered(ServiceRegistered {
                    service_id: record.service.id,
                    service_name: record.service.name.clone(),
                    revision: record.service.revision,
                    transport: transport.to_owned(),
                    tool_count: record.tools.len(),
                })),
                tools_updated(record, ToolsChange::Registered),
            ]
        };
        let record =
            store::insert_service(&mut *self.pool.get().await?, &new, &discovered, &events).await?;
        self.outbox_wake.notify_one();
        tracing::info!(tools = record.tools.len(), "service registered");
        Ok(record.to_view(&self.endpoint_base, true)?)
    }

    pub async fn list(&self) -> Result<Vec<ServiceView>, RegistryError> {
        let records = queries::all_services(&mut *self.pool.get().await?).await?;
        records
            .iter()
            .map(|r| {
                r.to_view(&self.endpoint_base, false)
                    .map_err(RegistryError::from)
            })
            .collect()
    }

    pub async fn get(&self, name: &str) -> Result<ServiceView, RegistryError> {
        Ok(self.find(name).await?.to_view(&self.endpoint_base, true)?)
    }

    pub async fn tools(
        &self,
        name: &str,
    ) -> Result<Vec<mcpo_core::domain::ToolView>, RegistryError> {
        Ok(self.find(name).await?.tool_views(&self.endpoint_base))
    }

    /// Lists the server's tools again and stores them when they changed.
    #[tracing::instrument(skip(self))]
    pub async fn refresh(&self, name: &str) -> Result<RefreshOutcome, RegistryError> {
        let current = self.find(name).await?;
        let discovered = mcp::discover(&current.transport()?, self.connect_timeout, name).await?;
        let events = |record: &ServiceRecord| vec![tools_updated(record, ToolsChange::Refreshed)];
        let (record, changed) =
            store::replace_tools(&mut *self.pool.get().await?, &current, &discovered, &events)
                .await?;
        if changed {
            self.outbox_wake.notify_one();
            tracing::info!(
                tools = record.tools.len(),
                revision = record.service.revision,
                "tools changed"
            );
        }
        Ok(RefreshOutcome {
            changed,
            service: record.to_view(&self.endpoint_base, true)?,
        })
    }

    #[tracing::instrument(skip(self))]
    pub async fn delete(&self, name: &str) -> Result<(), RegistryError> {
        let events = |deleted: &ServiceRow| {
            vec![EventEnvelope::new(Event::ToolsUpdated(ToolsUpdated {
                service_id: deleted.id,
                service_name: deleted.name.clone(),
                revision: deleted.revision + 1,
                change: ToolsChange::Deleted,
                tools: Vec::new(),
            }))]
        };
        store::delete_service(&mut *self.pool.get().await?, name, &events).await?;
        self.outbox_wake.notify_one();
        Ok(())
    }

    async fn find(&self, name: &str) -> Result<ServiceRecord, RegistryError> {
        queries::find_service(&mut *self.pool.get().await?, name)
            .await?
            .ok_or_else(|| RegistryError::ServiceNotFound(name.to_owned()))
    }
}

fn tools_updated(record: &ServiceRecord, change: ToolsChange) -> EventEnvelope {
    EventEnvelope::new(Event::ToolsUpdated(ToolsUpdated {
        service_id: record.service.id,
        service_name: record.service.name.clone(),
        revision: record.service.revision,
        change,
        tools: record
            .tools
            .iter()
            .filter_map(|t| t.tool.endpoint.rsplit('/').next().map(str::to_owned))
            .collect(),
    }))
}
