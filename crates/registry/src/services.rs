//! What the registry does, without HTTP: validate, discover, store, announce.

use std::time::Duration;

use mcpo_core::db::queries::{self, ServiceRecord};
use mcpo_core::db::DbPool;
use mcpo_core::domain::naming::validate_service_name;
use mcpo_core::domain::{ServiceView, TransportConfig};
use mcpo_core::events::{
    Event, EventBus, EventEnvelope, ServiceRegistered, ToolsChange, ToolsUpdated,
};
use mcpo_core::mcp;
use serde::{Deserialize, Serialize};

use crate::error::RegistryError;
use crate::store::{self, NewService};

const MAX_DESCRIPTION_LEN: usize = 4096;

/// What a registry operation needs.
#[derive(Clone)]
pub struct Registry {
    pub pool: DbPool,
    pub bus: EventBus,
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
    pub fn new(settings: &mcpo_core::Settings, deps: &mcpo_core::server::Dependencies) -> Self {
        Registry {
            pool: deps.pool.clone(),
            bus: deps.bus.clone(),
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
        let record = store::insert_service(&mut *self.pool.get().await?, &new, &discovered).await?;
        tracing::info!(tools = record.tools.len(), "service registered");
        self.announce(Event::ServiceRegistered(ServiceRegistered {
            service_id: record.service.id,
            service_name: record.service.name.clone(),
            revision: record.service.revision,
            transport: request.transport.kind().to_owned(),
            tool_count: record.tools.len(),
        }))
        .await;
        self.announce(tools_updated(&record, ToolsChange::Registered))
            .await;
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
        let (record, changed) =
            store::replace_tools(&mut *self.pool.get().await?, &current, &discovered).await?;
        if changed {
            tracing::info!(
                tools = record.tools.len(),
                revision = record.service.revision,
                "tools changed"
            );
            self.announce(tools_updated(&record, ToolsChange::Refreshed))
                .await;
        }
        Ok(RefreshOutcome {
            changed,
            service: record.to_view(&self.endpoint_base, true)?,
        })
    }

    #[tracing::instrument(skip(self))]
    pub async fn delete(&self, name: &str) -> Result<(), RegistryError> {
        let deleted = store::delete_service(&mut *self.pool.get().await?, name).await?;
        self.announce(Event::ToolsUpdated(ToolsUpdated {
            service_id: deleted.id,
            service_name: deleted.name,
            revision: deleted.revision + 1,
            change: ToolsChange::Deleted,
            tools: Vec::new(),
        }))
        .await;
        Ok(())
    }

    async fn find(&self, name: &str) -> Result<ServiceRecord, RegistryError> {
        queries::find_service(&mut *self.pool.get().await?, name)
            .await?
            .ok_or_else(|| RegistryError::ServiceNotFound(name.to_owned()))
    }

    /// Publishes after the change is committed. A failure is logged, not
    /// returned: the change is stored and consumers re-read Postgres at start.
    async fn announce(&self, event: Event) {
        let envelope = EventEnvelope::new(event);
        if let Err(e) = self.bus.publish(&envelope).await {
            tracing::error!(error = %e, event_id = %envelope.event_id, "event not published");
        }
    }
}

fn tools_updated(record: &ServiceRecord, change: ToolsChange) -> Event {
    Event::ToolsUpdated(ToolsUpdated {
        service_id: record.service.id,
        service_name: record.service.name.clone(),
        revision: record.service.revision,
        change,
        tools: record
            .tools
            .iter()
            .filter_map(|t| t.tool.endpoint.rsplit('/').next().map(str::to_owned))
            .collect(),
    })
}
