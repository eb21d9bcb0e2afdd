//! What the registry does, without HTTP: validate, discover, store, announce.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mcpo_core::auth::{Caller, Permission};
use mcpo_core::db::models::ServiceRow;
use mcpo_core::db::queries::{self, ServiceRecord};
use mcpo_core::db::DbPool;
use mcpo_core::domain::naming::{validate_service_name, MAX_SERVICE_NAME_LEN};
use mcpo_core::domain::DiscoveredServer;
use mcpo_core::domain::{ServiceStatus, ServiceView, SessionScope, TransportConfig};
use mcpo_core::events::{
    Event, EventEnvelope, ServiceRegistered, ServiceUpdated, ToolsChange, ToolsUpdated,
};
use mcpo_core::mcp::{self, ConnectPolicy};
use mcpo_core::secrets::{
    redact_transport, restore_redacted, secret_values, SecretKeyring, REDACTED,
};
use mcpo_core::ApiError;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::audit::AuditRecord;
use crate::config_file::{self, McpServersFile};
use crate::error::RegistryError;
use crate::store::{self, Changed, NewService, ServiceChange};

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
    /// What registered servers may run and connect to.
    pub policy: ConnectPolicy,
    /// Seals env and header values before they are stored.
    pub secret_keys: Option<SecretKeyring>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterService {
    /// Lowercase letters, digits, `-` and `_`; 1 to 64 characters; unique.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub transport: TransportConfig,
    /// Seconds one tool call may take, instead of the executor's default.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3600)]
    pub call_timeout_secs: Option<u32>,
    /// MCP sessions the executor keeps to the server, shared by callers (default 1).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 16)]
    pub session_pool_size: Option<u32>,
    /// `per_caller` gives each caller a session of its own (stateful servers).
    #[serde(default)]
    pub session_scope: Option<SessionScope>,
}

/// `PATCH` body: only the fields present change; `"description": null` clears it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateService {
    /// A new description; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub transport: Option<TransportConfig>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Seconds one tool call may take; `null` goes back to the default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, nullable, minimum = 1, maximum = 3600)]
    pub call_timeout_secs: Option<Option<u32>>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 16)]
    pub session_pool_size: Option<u32>,
    #[serde(default)]
    pub session_scope: Option<SessionScope>,
}

/// Tells a field that is present (even as `null`) from one that is absent.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl UpdateService {
    fn validate(&self) -> Result<(), RegistryError> {
        validate_description(self.description.as_ref().and_then(|d| d.as_deref()))?;
        validate_call_timeout(self.call_timeout_secs.flatten())?;
        validate_pool_size(self.session_pool_size)?;
        match &self.transport {
            Some(transport) => transport
                .validate()
                .map_err(|(field, problem)| RegistryError::invalid(field, problem)),
            None => Ok(()),
        }
    }
}

/// What happened to one entry of an imported file.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportedEntry {
    pub name: String,
    /// `registered` or `failed`.
    pub outcome: String,
    /// The error code when it failed (as in every error answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub registered: usize,
    pub failed: usize,
    pub entries: Vec<ImportedEntry>,
}

/// Entries registered at once during an import.
const IMPORT_PARALLELISM: usize = 4;
pub const MAX_IMPORT_ENTRIES: usize = 200;

/// What the service list is asked for.
#[derive(Debug, Clone, Default)]
pub struct ListServices {
    pub status: Option<ServiceStatus>,
    pub text: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

pub const DEFAULT_PAGE: i64 = 50;
const MAX_SEARCH_LEN: usize = 256;

/// Why a query text cannot be used, if it cannot.
fn text_problem(text: &str, max: usize) -> Option<String> {
    // Characters, as JSON Schema's maxLength counts them.
    if text.chars().count() > max {
        Some(format!("must be at most {max} characters"))
    } else if text.contains('\0') {
        Some("must not contain NUL characters".into())
    } else {
        None
    }
}
pub const MAX_PAGE: i64 = 200;

/// The page size a list asks for, or the default; out of range is refused.
pub(crate) fn page_limit(limit: Option<i64>) -> Result<i64, RegistryError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(RegistryError::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ))
    }
}

/// An `If-Match` header: `*` or a list of entity tags (`"3"`, `W/"3"`).
#[derive(Debug, Clone)]
pub struct IfMatch(Vec<String>);

impl IfMatch {
    pub fn parse(header: &str) -> IfMatch {
        IfMatch(
            header
                .split(',')
                .map(|tag| {
                    tag.trim()
                        .trim_start_matches("W/")
                        .trim_matches('"')
                        .to_owned()
                })
                .collect(),
        )
    }

    pub fn matches(&self, revision: i64) -> bool {
        self.0
            .iter()
            .any(|tag| tag == "*" || tag.parse::<i64>() == Ok(revision))
    }
}

/// The entity tag of a service at a revision.
pub fn etag(revision: i64) -> String {
    format!("\"{revision}\"")
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RefreshOutcome {
    /// Whether the tool list differed from the stored one.
    pub changed: bool,
    pub service: ServiceView,
}

impl RegisterService {
    fn validate(&self) -> Result<(), RegistryError> {
        validate_service_name(&self.name)
            .map_err(|problem| RegistryError::invalid("name", problem))?;
        validate_description(self.description.as_deref())?;
        validate_call_timeout(self.call_timeout_secs)?;
        validate_pool_size(self.session_pool_size)?;
        self.transport
            .validate()
            .map_err(|(field, problem)| RegistryError::invalid(field, problem))
    }
}

const MAX_CALL_TIMEOUT_SECS: u32 = 3600;

fn validate_call_timeout(secs: Option<u32>) -> Result<(), RegistryError> {
    match secs {
        Some(s) if !(1..=MAX_CALL_TIMEOUT_SECS).contains(&s) => Err(RegistryError::invalid(
            "call_timeout_secs",
            format!("must be between 1 and {MAX_CALL_TIMEOUT_SECS}"),
        )),
        _ => Ok(()),
    }
}

const MAX_POOL_SIZE: u32 = 16;

fn validate_pool_size(size: Option<u32>) -> Result<(), RegistryError> {
    match size {
        Some(s) if !(1..=MAX_POOL_SIZE).contains(&s) => Err(RegistryError::invalid(
            "session_pool_size",
            format!("must be between 1 and {MAX_POOL_SIZE}"),
        )),
        _ => Ok(()),
    }
}

fn validate_description(description: Option<&str>) -> Result<(), RegistryError> {
    match description {
        Some(d) if d.len() > MAX_DESCRIPTION_LEN || d.contains('\0') => {
            Err(RegistryError::invalid(
                "description",
                format!("must be at most {MAX_DESCRIPTION_LEN} bytes, without NUL"),
            ))
        }
        _ => Ok(()),
    }
}

impl Registry {
    pub fn new(settings: &mcpo_core::Settings, pool: DbPool, outbox_wake: Arc<Notify>) -> Self {
        Registry {
            pool,
            outbox_wake,
            endpoint_base: settings.executor_public_url.clone(),
            connect_timeout: settings.mcp_connect_timeout,
            policy: ConnectPolicy::from_settings(settings),
            secret_keys: settings.secret_keys.clone(),
        }
    }

    /// Connects under the policy, lists everything, closes.
    async fn discover(
        &self,
        transport: &TransportConfig,
        name: &str,
    ) -> Result<DiscoveredServer, RegistryError> {
        Ok(mcp::discover(transport, self.connect_timeout, name, &self.policy).await?)
    }

    /// The transport as it is stored: secrets sealed.
    fn seal(&self, transport: &TransportConfig) -> Result<TransportConfig, RegistryError> {
        match &self.secret_keys {
            Some(keys) => keys
                .seal_transport(transport)
                .map_err(|e| RegistryError::Core(mcpo_core::CoreError::Internal(e.to_string()))),
            None if secret_values(transport).is_empty() => Ok(transport.clone()),
            None => Err(RegistryError::SecretsUnavailable),
        }
    }

    fn open_transport(&self, record: &ServiceRecord) -> Result<TransportConfig, RegistryError> {
        Ok(record.transport(self.secret_keys.as_ref())?)
    }

    /// Registers a server: nothing is stored unless it initializes and lists
    /// its tools. No database connection is held while we talk to the server.
    #[tracing::instrument(skip_all, fields(service = %request.name, transport = request.transport.kind()))]
    pub async fn register(
        &self,
        request: RegisterService,
        caller: &Caller,
    ) -> Result<ServiceView, RegistryError> {
        request.validate()?;
        authorize_transport(caller, &request.transport)?;
        check_secret_values(&request.transport)?;
        if store::service_exists(&mut *self.pool.get().await?, &request.name).await? {
            return Err(RegistryError::NameTaken(request.name));
        }
        let sealed = self.seal(&request.transport)?;
        let discovered = self.discover(&request.transport, &request.name).await?;
        let new = NewService {
            name: &request.name,
            description: request.description.as_deref(),
            transport: &sealed,
            call_timeout_secs: request.call_timeout_secs.map(|s| s as i32),
            session_pool_size: request.session_pool_size.unwrap_or(1) as i32,
            session_scope: request.session_scope.unwrap_or_default(),
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
        let audit = AuditRecord {
            actor: &caller.actor,
            action: "service.registered",
            target: &request.name,
            details: serde_json::json!({
                "description": request.description,
                "transport": redact_transport(&request.transport),
                "tools": discovered.tools.len(),
            }),
        };
        let record = store::insert_service(
            &mut *self.pool.get().await?,
            &new,
            &discovered,
            &events,
            &audit,
        )
        .await?;
        self.outbox_wake.notify_one();
        tracing::info!(tools = record.tools.len(), "service registered");
        Ok(record.to_view(&self.endpoint_base, true)?)
    }

    /// Registers every entry of an `mcpServers` file; one entry's failure does
    /// not stop the others, and the report says what happened to each.
    pub async fn import(
        &self,
        file: McpServersFile,
        caller: &Caller,
    ) -> Result<ImportReport, RegistryError> {
        if file.mcp_servers.len() > MAX_IMPORT_ENTRIES {
            return Err(RegistryError::invalid(
                "mcpServers",
                format!("may hold at most {MAX_IMPORT_ENTRIES} entries"),
            ));
        }
        let entries: Vec<ImportedEntry> = futures::stream::iter(file.mcp_servers)
            .map(|(name, entry)| async move {
                let registered = match config_file::transport_of(&entry) {
                    Ok(transport) => {
                        self.register(
                            RegisterService {
                                name: name.clone(),
                                description: None,
                                transport,
                                call_timeout_secs: None,
                                session_pool_size: None,
                                session_scope: None,
                            },
                            caller,
                        )
                        .await
                    }
                    Err(problem) => Err(RegistryError::invalid(
                        format!("mcpServers.{name}"),
                        problem,
                    )),
                };
                match registered {
                    Ok(service) => ImportedEntry {
                        name,
                        outcome: "registered".into(),
                        code: None,
                        message: None,
                        service: Some(service),
                    },
                    Err(e) => {
                        let error = ApiError::from(e);
                        ImportedEntry {
                            name,
                            outcome: "failed".into(),
                            code: Some(error.code.name().to_owned()),
                            message: Some(error.message),
                            service: None,
                        }
                    }
                }
            })
            .buffered(IMPORT_PARALLELISM)
            .collect()
            .await;
        let registered = entries.iter().filter(|e| e.outcome == "registered").count();
        Ok(ImportReport {
            registered,
            failed: entries.len() - registered,
            entries,
        })
    }

    /// Every service as an `mcpServers` file, secrets redacted unless
    /// `with_secrets` (admins only, and audited).
    pub async fn export(
        &self,
        caller: &Caller,
        with_secrets: bool,
    ) -> Result<McpServersFile, RegistryError> {
        if with_secrets {
            caller.require(Permission::RegistryAdmin)?;
        }
        let mut conn = self.pool.get().await?;
        let records = queries::all_services(&mut conn).await?;
        let mut mcp_servers = std::collections::BTreeMap::new();
        for record in &records {
            let transport = match with_secrets {
                true => self.open_transport(record)?,
                false => redact_transport(&record.stored_transport()?),
            };
            mcp_servers.insert(
                record.service.name.clone(),
                config_file::entry_of(&transport),
            );
        }
        if with_secrets {
            crate::audit::record(
                &mut conn,
                &AuditRecord {
                    actor: &caller.actor,
                    action: "services.exported_with_secrets",
                    target: "*",
                    details: serde_json::json!({ "services": records.len() }),
                },
            )
            .await?;
        }
        Ok(McpServersFile { mcp_servers })
    }

    /// A page of services (without tools) and the cursor of the next page.
    pub async fn list(
        &self,
        request: ListServices,
    ) -> Result<(Vec<ServiceView>, Option<String>), RegistryError> {
        let limit = page_limit(request.limit)?;
        if let Some(problem) = request
            .text
            .as_deref()
            .and_then(|q| text_problem(q, MAX_SEARCH_LEN))
        {
            return Err(RegistryError::invalid("q", problem));
        }
        if let Some(problem) = request
            .cursor
            .as_deref()
            .and_then(|c| text_problem(c, MAX_SERVICE_NAME_LEN))
        {
            return Err(RegistryError::invalid("cursor", problem));
        }
        let filter = queries::ServiceFilter {
            status: request.status,
            text: request.text,
            after: request.cursor,
            limit,
        };
        let (records, more) = queries::list_services(&mut *self.pool.get().await?, &filter).await?;
        let views = records
            .iter()
            .map(|r| {
                r.to_view(&self.endpoint_base, false)
                    .map_err(RegistryError::from)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let next = more.then(|| views.last().map(|v| v.name.clone())).flatten();
        Ok((views, next))
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
    #[tracing::instrument(skip(self, caller))]
    pub async fn refresh(
        &self,
        name: &str,
        caller: &Caller,
    ) -> Result<RefreshOutcome, RegistryError> {
        let current = self.find(name).await?;
        let stored = self.open_transport(&current)?;
        // Refreshing a stdio service starts its command here.
        authorize_transport(caller, &stored)?;
        let discovered = self.discover(&stored, name).await?;
        let change = ServiceChange {
            discovered: Some(&discovered),
            ..Default::default()
        };
        let audit = AuditRecord {
            actor: &caller.actor,
            action: "service.refreshed",
            target: name,
            details: serde_json::json!({ "tools": discovered.tools.len() }),
        };
        let (record, changed) = self.apply(&current, &change, &audit).await?;
        Ok(RefreshOutcome {
            changed: changed.tools,
            service: record.to_view(&self.endpoint_base, true)?,
        })
    }

    /// Changes description, transport or the enabled flag. A new transport is
    /// discovered before anything is stored: if the server cannot be reached
    /// there, nothing changes. `if_match` is the revision the caller last saw.
    #[tracing::instrument(skip(self, update, caller))]
    pub async fn update(
        &self,
        name: &str,
        mut update: UpdateService,
        if_match: Option<IfMatch>,
        caller: &Caller,
    ) -> Result<ServiceView, RegistryError> {
        update.validate()?;
        let current = self.find(name).await?;
        let stored = self.open_transport(&current)?;
        // Anything about a stdio service (even enabling it or its sessions)
        // decides what runs on our hosts.
        authorize_transport(caller, &stored)?;
        if let Some(transport) = &mut update.transport {
            // A transport read back from GET carries `[redacted]` values:
            // they mean "keep what is stored", but only for the same
            // destination; a stored secret never goes anywhere new.
            if same_destination(transport, &stored) {
                *transport = restore_redacted(transport, &stored);
            }
            check_secret_values(transport)?;
            if *transport != stored {
                authorize_transport(caller, transport)?;
            }
        }
        let precondition_failed = || RegistryError::PreconditionFailed {
            name: name.to_owned(),
            current: current.service.revision,
        };
        if if_match
            .as_ref()
            .is_some_and(|m| !m.matches(current.service.revision))
        {
            return Err(precondition_failed());
        }
        let discovered = match &update.transport {
            Some(transport) if *transport != stored => Some(self.discover(transport, name).await?),
            _ => None,
        };
        let status = update.enabled.and_then(|enabled| {
            let disabled = current.service.status == ServiceStatus::Disabled.as_str();
            match (enabled, disabled) {
                (false, _) => Some(ServiceStatus::Disabled),
                (true, true) => Some(ServiceStatus::Active),
                (true, false) => None,
            }
        });
        let sealed = update
            .transport
            .as_ref()
            .filter(|t| **t != stored)
            .map(|t| self.seal(t))
            .transpose()?;
        let change = ServiceChange {
            description: update.description.as_ref().map(|d| d.as_deref()),
            transport: sealed.as_ref(),
            status,
            discovered: discovered.as_ref(),
            call_timeout_secs: update.call_timeout_secs.map(|secs| secs.map(|s| s as i32)),
            session_pool_size: update.session_pool_size.map(|s| s as i32),
            session_scope: update.session_scope,
        };
        let audit = AuditRecord {
            actor: &caller.actor,
            action: "service.updated",
            target: name,
            details: serde_json::json!({
                "description": update.description,
                "transport": sealed.as_ref().map(redact_transport),
                "enabled": update.enabled,
                "call_timeout_secs": update.call_timeout_secs,
                "session_pool_size": update.session_pool_size,
                "session_scope": update.session_scope,
            }),
        };
        match self.apply(&current, &change, &audit).await {
            // With If-Match, "changed meanwhile" is the precondition failing.
            Err(RegistryError::ConcurrentChange(_)) if if_match.is_some() => {
                Err(precondition_failed())
            }
            other => Ok(other?.0.to_view(&self.endpoint_base, true)?),
        }
    }

    /// Stores a change with its events: `service.updated` when settings
    /// changed, `tools.updated` when tools did.
    async fn apply(
        &self,
        current: &ServiceRecord,
        change: &ServiceChange<'_>,
        audit: &AuditRecord<'_>,
    ) -> Result<(ServiceRecord, Changed), RegistryError> {
        let events = |record: &ServiceRecord, changed: Changed| {
            let mut events = Vec::new();
            if changed.service {
                events.push(EventEnvelope::new(Event::ServiceUpdated(ServiceUpdated {
                    service_id: record.service.id,
                    service_name: record.service.name.clone(),
                    revision: record.service.revision,
                    status: record.service.status.clone(),
                })));
            }
            if changed.tools {
                events.push(tools_updated(record, ToolsChange::Refreshed));
            }
            events
        };
        let (record, changed) = store::update_service(
            &mut *self.pool.get().await?,
            current,
            change,
            &events,
            audit,
        )
        .await?;
        if changed.service || changed.tools {
            self.outbox_wake.notify_one();
            tracing::info!(
                revision = record.service.revision,
                tools_changed = changed.tools,
                "service changed"
            );
        }
        Ok((record, changed))
    }

    #[tracing::instrument(skip(self, caller))]
    pub async fn delete(&self, name: &str, caller: &Caller) -> Result<(), RegistryError> {
        if validate_service_name(name).is_err() {
            return Err(RegistryError::ServiceNotFound(name.to_owned()));
        }
        let events = |deleted: &ServiceRow| {
            vec![EventEnvelope::new(Event::ToolsUpdated(ToolsUpdated {
                service_id: deleted.id,
                service_name: deleted.name.clone(),
                revision: deleted.revision + 1,
                change: ToolsChange::Deleted,
                tools: Vec::new(),
            }))]
        };
        let audit = AuditRecord {
            actor: &caller.actor,
            action: "service.deleted",
            target: name,
            details: serde_json::json!({}),
        };
        store::delete_service(&mut *self.pool.get().await?, name, &events, &audit).await?;
        self.outbox_wake.notify_one();
        Ok(())
    }

    /// Seals every stored secret with the active key (after a key was added
    /// in front of `MCPO_SECRET_KEYS`); returns how many services changed.
    /// Services changed meanwhile are read again, so none is left behind.
    pub async fn reseal_secrets(&self, caller: &Caller) -> Result<usize, RegistryError> {
        let keys = self
            .secret_keys
            .as_ref()
            .ok_or(RegistryError::SecretsUnavailable)?;
        let mut resealed = 0;
        let records = queries::all_services(&mut *self.pool.get().await?).await?;
        for record in records {
            let mut current = record;
            loop {
                let stored = current.stored_transport()?;
                if !keys.needs_reseal(&stored) {
                    break;
                }
                let sealed = self.seal(&stored)?;
                let audit = AuditRecord {
                    actor: &caller.actor,
                    action: "service.secrets_resealed",
                    target: &current.service.name,
                    details: serde_json::json!({ "key": keys.active_id() }),
                };
                let mut conn = self.pool.get().await?;
                if store::replace_sealed_transport(&mut conn, &current, &sealed, &audit).await? {
                    resealed += 1;
                    break;
                }
                match queries::find_service(&mut conn, &current.service.name).await? {
                    Some(fresh) => current = fresh,
                    None => break,
                }
            }
        }
        Ok(resealed)
    }

    /// A page of the audit trail, newest first, and the `before` of the next.
    pub async fn audit(
        &self,
        target: Option<String>,
        before: Option<i64>,
        limit: Option<i64>,
    ) -> Result<(Vec<crate::audit::AuditEntry>, Option<i64>), RegistryError> {
        let limit = page_limit(limit)?;
        if let Some(problem) = target.as_deref().and_then(|t| text_problem(t, 128)) {
            return Err(RegistryError::invalid("target", problem));
        }
        let entries = crate::audit::list(
            &mut *self.pool.get().await?,
            target.as_deref(),
            before,
            limit + 1,
        )
        .await?;
        let more = entries.len() as i64 > limit;
        let entries: Vec<_> = entries.into_iter().take(limit as usize).collect();
        let next = more.then(|| entries.last().map(|e| e.id)).flatten();
        Ok((entries, next))
    }

    async fn find(&self, name: &str) -> Result<ServiceRecord, RegistryError> {
        // A name that can never be registered is not looked up (nor sent to
        // Postgres, which refuses some of what a URL can carry, such as NUL).
        if validate_service_name(name).is_err() {
            return Err(RegistryError::ServiceNotFound(name.to_owned()));
        }
        queries::find_service(&mut *self.pool.get().await?, name)
            .await?
            .ok_or_else(|| RegistryError::ServiceNotFound(name.to_owned()))
    }
}

/// Values a caller cannot mean: the placeholder GET answers show (when there
/// is no stored value to keep), or something shaped like our ciphertext
/// (which would let a caller copy another service's sealed secret).
fn check_secret_values(transport: &TransportConfig) -> Result<(), RegistryError> {
    let (field, values) = match transport {
        TransportConfig::Stdio { env, .. } => ("transport.env", env),
        TransportConfig::StreamableHttp { headers, .. } | TransportConfig::Sse { headers, .. } => {
            ("transport.headers", headers)
        }
    };
    match values
        .iter()
        .find(|(_, v)| *v == REDACTED || SecretKeyring::is_sealed(v))
    {
        Some((key, _)) => Err(RegistryError::invalid(
            format!("{field}.{key}"),
            format!("must be the real value, not `{REDACTED}` or a sealed value"),
        )),
        None => Ok(()),
    }
}

/// The same server: the same URL, or the same command line.
fn same_destination(new: &TransportConfig, old: &TransportConfig) -> bool {
    match (new, old) {
        (
            TransportConfig::StreamableHttp { url: a, .. },
            TransportConfig::StreamableHttp { url: b, .. },
        )
        | (TransportConfig::Sse { url: a, .. }, TransportConfig::Sse { url: b, .. }) => a == b,
        (
            TransportConfig::Stdio {
                command: a,
                args: x,
                ..
            },
            TransportConfig::Stdio {
                command: b,
                args: y,
                ..
            },
        ) => a == b && x == y,
        _ => false,
    }
}

/// stdio servers run a command on our hosts: registering or changing one
/// takes `registry:admin`.
fn authorize_transport(caller: &Caller, transport: &TransportConfig) -> Result<(), RegistryError> {
    if matches!(transport, TransportConfig::Stdio { .. }) {
        caller.require(Permission::RegistryAdmin)?;
    }
    Ok(())
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
