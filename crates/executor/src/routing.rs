//! The executor's routing table: which tools exist and how to reach their
//! servers. A cache of Postgres, kept current by `tools.updated` events, with
//! a database look-up on a miss (so a tool is callable as soon as the
//! registry has answered, even before the event arrives). Misses are
//! remembered briefly (see `misses.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use mcpo_core::db::queries::{self, ServiceRecord};
use mcpo_core::db::DbPool;
use mcpo_core::domain::naming::validate_service_name;
use mcpo_core::domain::SessionScope;
use mcpo_core::domain::{ServiceStatus, TransportConfig};
use mcpo_core::secrets::SecretKeyring;
use mcpo_core::CoreError;
use uuid::Uuid;

use crate::misses::Misses;

#[derive(Debug)]
pub struct ServiceRoute {
    pub id: Uuid,
    pub name: String,
    pub revision: i64,
    /// Disabled by an operator: calls are refused without contacting the server.
    pub disabled: bool,
    pub transport: TransportConfig,
    /// The service's own limit of one call; `None`: the executor's default.
    pub call_timeout: Option<std::time::Duration>,
    pub session_pool_size: usize,
    pub session_scope: SessionScope,
    /// Endpoint name → tool.
    pub tools: HashMap<String, ToolRoute>,
}

#[derive(Debug)]
pub struct ToolRoute {
    /// The MCP tool name.
    pub name: String,
    /// The input schema, compiled once per route version; `None` when the
    /// server's schema does not compile (the server then judges the arguments).
    pub validator: Option<Arc<jsonschema::Validator>>,
    /// The output schema, compiled, when the tool declares one: structured
    /// content that does not match it is the server's error, not a result.
    pub output: Option<Arc<jsonschema::Validator>>,
}

impl ServiceRoute {
    fn from_record(
        record: &ServiceRecord,
        keys: Option<&SecretKeyring>,
        validators: &Validators,
    ) -> Result<ServiceRoute, CoreError> {
        Ok(ServiceRoute {
            id: record.service.id,
            name: record.service.name.clone(),
            revision: record.service.revision,
            disabled: record.service.status == ServiceStatus::Disabled.as_str(),
            transport: record.transport(keys)?,
            call_timeout: record
                .service
                .call_timeout_secs
                .map(|secs| std::time::Duration::from_secs(secs.max(1) as u64)),
            session_pool_size: record.service.session_pool_size.clamp(1, 16) as usize,
            session_scope: SessionScope::parse(&record.service.session_scope),
            tools: record
                .tools
                .iter()
                .filter_map(|t| {
                    let endpoint_name = t.tool.endpoint.rsplit('/').next()?;
                    let (validator, output) = validators.for_schema(&record.service.name, t);
                    Some((
                        endpoint_name.to_owned(),
                        ToolRoute {
                            name: t.tool.name.clone(),
                            validator,
                            output,
                        },
                    ))
                })
                .collect(),
        })
    }
}

type Validator = Option<Arc<jsonschema::Validator>>;

/// Compiled schemas, shared by every tool with the same stored schema pair
/// (stored once per content hash): a server registered many times, or many
/// tools with one schema, cost one compilation and one copy in memory.
#[derive(Default)]
struct Validators(std::sync::Mutex<HashMap<Uuid, (Validator, Validator)>>);

impl Validators {
    fn for_schema(
        &self,
        service: &str,
        tool: &mcpo_core::db::queries::ToolRecord,
    ) -> (Validator, Validator) {
        let mut compiled = self.0.lock().unwrap_or_else(|p| p.into_inner());
        compiled
            .entry(tool.schema.id)
            .or_insert_with(|| {
                let compile = |schema: &serde_json::Value, what: &str| match jsonschema::validator_for(schema) {
                    Ok(validator) => Some(Arc::new(validator)),
                    Err(e) => {
                        tracing::warn!(%service, tool = %tool.tool.name, error = %e, "{what} schema does not compile; it goes unchecked");
                        None
                    }
                };
                (
                    compile(&tool.schema.input_schema, "input"),
                    tool.schema.output_schema.as_ref().and_then(|s| compile(s, "output")),
                )
            })
            .clone()
    }
}

#[derive(Default)]
struct Table {
    by_name: HashMap<String, Arc<ServiceRoute>>,
    /// Ids of deleted services, so a slow miss look-up cannot bring one back.
    deleted: HashSet<Uuid>,
    misses: Misses,
}

pub struct RoutingTable {
    pool: DbPool,
    validators: Validators,
    /// Opens the transports' sealed secrets.
    secret_keys: Option<SecretKeyring>,
    table: RwLock<Table>,
}

/// What changed for a service when the table was updated.
pub enum RouteChange {
    Upserted(Arc<ServiceRoute>),
    Removed(Arc<ServiceRoute>),
    Unchanged,
}

impl RoutingTable {
    pub fn new(pool: DbPool, secret_keys: Option<SecretKeyring>) -> Self {
        RoutingTable {
            pool,
            validators: Validators::default(),
            secret_keys,
            table: RwLock::new(Table::default()),
        }
    }

    /// Replaces the whole table with what Postgres holds; returns the ids of
    /// services that were in the table and are gone now.
    pub async fn resync(&self) -> Result<Vec<Uuid>, CoreError> {
        let before: HashSet<Uuid> = self.read().by_name.values().map(|r| r.id).collect();
        self.load_all().await?;
        let table = self.read();
        let after: HashSet<Uuid> = table.by_name.values().map(|r| r.id).collect();
        Ok(before.difference(&after).copied().collect())
    }

    /// Replaces the whole table with what Postgres holds.
    pub async fn load_all(&self) -> Result<usize, CoreError> {
        let records = queries::all_services(&mut *self.pool.get().await?).await?;
        let mut by_name = HashMap::new();
        for record in &records {
            // One unreadable service must not keep the others from serving.
            match ServiceRoute::from_record(record, self.secret_keys.as_ref(), &self.validators) {
                Ok(route) => {
                    by_name.insert(record.service.name.clone(), Arc::new(route));
                }
                Err(e) => {
                    tracing::error!(service = %record.service.name, error = %e, "service cannot be routed")
                }
            }
        }
        let count = by_name.len();
        self.write().by_name = by_name;
        Ok(count)
    }

    /// The route of a service, from the cache or else from Postgres.
    pub async fn service(&self, name: &str) -> Result<Option<Arc<ServiceRoute>>, CoreError> {
        // Names that cannot be registered are not looked up: no database
        // round trip for junk, and nothing Postgres refuses (NUL) reaches it.
        if validate_service_name(name).is_err() {
            return Ok(None);
        }
        {
            let table = self.read();
            if let Some(route) = table.by_name.get(name) {
                return Ok(Some(route.clone()));
            }
            if table.misses.recent(name, Instant::now()) {
                return Ok(None);
            }
        }
        // The event follower may have put it there meanwhile: read the table again.
        self.reload(name).await?;
        let found = self.read().by_name.get(name).cloned();
        if found.is_none() {
            self.write()
                .misses
                .record(Misses::service(name), Instant::now());
        }
        Ok(found)
    }

    /// The route of a service, reloaded once when it lacks `tool` (our copy
    /// may be older than the tool). A route without the tool means 404.
    pub async fn service_with_tool(
        &self,
        name: &str,
        tool: &str,
    ) -> Result<Option<Arc<ServiceRoute>>, CoreError> {
        let Some(route) = self.service(name).await? else {
            return Ok(None);
        };
        let key = Misses::tool(name, tool);
        if route.tools.contains_key(tool) || self.read().misses.recent(&key, Instant::now()) {
            return Ok(Some(route));
        }
        self.reload(name).await?;
        let route = self.read().by_name.get(name).cloned();
        if route.as_ref().is_some_and(|r| !r.tools.contains_key(tool)) {
            self.write().misses.record(key, Instant::now());
        }
        Ok(route)
    }

    /// Reads one service from Postgres and puts it in the table (or removes it).
    pub async fn reload(&self, name: &str) -> Result<RouteChange, CoreError> {
        let record = queries::find_service(&mut *self.pool.get().await?, name).await?;
        let mut table = self.write();
        match record {
            Some(record) => {
                let route = Arc::new(ServiceRoute::from_record(
                    &record,
                    self.secret_keys.as_ref(),
                    &self.validators,
                )?);
                if table.deleted.contains(&route.id) {
                    return Ok(RouteChange::Unchanged);
                }
                let newer = match table.by_name.get(name) {
                    Some(existing) => existing.id != route.id || existing.revision < route.revision,
                    None => true,
                };
                if !newer {
                    return Ok(RouteChange::Unchanged);
                }
                table.by_name.insert(name.to_owned(), route.clone());
                table.misses.forget_service(name);
                Ok(RouteChange::Upserted(route))
            }
            None => Ok(match table.by_name.remove(name) {
                Some(route) => {
                    table.deleted.insert(route.id);
                    RouteChange::Removed(route)
                }
                None => RouteChange::Unchanged,
            }),
        }
    }

    /// Marks a service id as deleted (from a `tools.updated` deletion event).
    pub fn forget(&self, id: Uuid) {
        self.write().deleted.insert(id);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
