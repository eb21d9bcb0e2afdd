//! HTTP handlers: extract, call `Registry`, map the answer. Each is registered
//! through utoipa-actix-web, so the published document and the router are
//! built from the same declarations and cannot drift.

use actix_web::http::header::{ETAG, IF_MATCH};
use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use mcpo_core::auth::{Authenticator, Authorized, RegistryAdmin, RegistryRead, RegistryWrite};
use mcpo_core::domain::{ServiceStatus, ServiceView, ToolView};
use mcpo_core::error::ErrorBody;
use mcpo_core::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_actix_web::scope::scope;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::api_keys::{self, ApiKeyView, CreateApiKey, CreatedApiKey};
use crate::audit::AuditEntry;
use crate::config_file::McpServersFile;
use crate::services::{
    etag, IfMatch, ImportReport, ListServices, RefreshOutcome, RegisterService, Registry,
    UpdateService,
};
use crate::snapshots::{self, SnapshotReport, SnapshotStatus};

type Result<T> = std::result::Result<T, ApiError>;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MCPO registry API",
        description = "Register MCP servers; MCPO discovers their tools and serves each as a REST endpoint of the tool executor. Every error answers `{code, message, details?}` with a stable code."
    ),
    tags(
        (name = "services", description = "Registered MCP servers and their tools"),
        (name = "admin", description = "API keys, the audit trail and the config store's backlog (`registry:admin`)"),
    ),
    components(schemas(ErrorBody))
)]
pub struct RegistryApi;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        // One scope for `services` and `services:import`: actix matches scope
        // prefixes by whole segments, and `services:import` is its own segment.
        scope("/api/v1/mcpo")
            .service(register)
            .service(import)
            .service(export)
            .service(list)
            .service(get_service)
            .service(update)
            .service(delete_service)
            .service(tools)
            .service(refresh)
            .service(create_api_key)
            .service(list_api_keys)
            .service(revoke_api_key)
            .service(audit_log)
            .service(config_snapshots),
    );
}

/// A page of services.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServicePage {
    pub services: Vec<ServiceView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ToolList {
    pub tools: Vec<ToolView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only services with this status.
    pub status: Option<ServiceStatus>,
    /// Only services whose name, or one of whose tool names, contains this text (case-insensitive).
    #[param(max_length = 256, pattern = "^[^\\x00]*$")]
    pub q: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(max_length = 64, pattern = "^[^\\x00]*$")]
    pub cursor: Option<String>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Env and header values in clear (needs `registry:admin`; audited).
    #[serde(default)]
    pub include_secrets: bool,
}

/// Register an MCP server: MCPO connects, initializes, lists every tool and
/// stores the service only if all of that worked.
#[utoipa::path(
    tag = "services",
    security(("bearer" = ["registry:write"]), ("api_key" = ["registry:write"])),
    request_body = RegisterService,
    responses(
        (status = 201, description = "Registered", body = ServiceView,
            headers(("ETag" = String, description = "The revision"), ("Location" = String))),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody),
        (status = 422, description = "A field is invalid; `details.field` names it", body = ErrorBody),
        (status = 502, description = "The server could not be reached or broke the protocol", body = ErrorBody),
        (status = 504, description = "The server did not answer in time", body = ErrorBody),
    )
)]
#[post("/services")]
async fn register(
    auth: Authorized<RegistryWrite>,
    registry: web::Data<Registry>,
    body: web::Json<RegisterService>,
) -> Result<HttpResponse> {
    let service = registry.register(body.into_inner(), &auth).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            "Location",
            format!("/api/v1/mcpo/services/{}", service.name),
        ))
        .insert_header((ETAG, etag(service.revision)))
        .json(service))
}

/// Register every server of an `{"mcpServers": {...}}` file (the format of
/// mcpo and desktop MCP clients). Each entry succeeds or fails on its own;
/// the answer reports each.
#[utoipa::path(
    tag = "services",
    security(("bearer" = ["registry:write"]), ("api_key" = ["registry:write"])),
    request_body = McpServersFile,
    responses(
        (status = 200, description = "What happened to each entry", body = ImportReport),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Not an mcpServers file, or too many entries", body = ErrorBody),
    )
)]
#[post("/services:import")]
async fn import(
    auth: Authorized<RegistryWrite>,
    registry: web::Data<Registry>,
    body: web::Json<McpServersFile>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(registry.import(body.into_inner(), &auth).await?))
}

/// Every service as an `{"mcpServers": {...}}` file. Env and header values
/// are redacted, unless `include_secrets=true` (needs `registry:admin`; audited).
#[utoipa::path(
    tag = "services",
    params(ExportQuery),
    security(("bearer" = ["registry:read"]), ("api_key" = ["registry:read"])),
    responses(
        (status = 200, description = "The file", body = McpServersFile),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
    )
)]
#[get("/services:export")]
async fn export(
    auth: Authorized<RegistryRead>,
    registry: web::Data<Registry>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(registry.export(&auth, query.include_secrets).await?))
}

/// List services, a page at a time, optionally filtered.
#[utoipa::path(
    tag = "services",
    security(("bearer" = ["registry:read"]), ("api_key" = ["registry:read"])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of services (without their tools)", body = ServicePage),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
        (status = 422, description = "`limit` is out of range", body = ErrorBody),
    )
)]
#[get("/services")]
async fn list(
    _auth: Authorized<RegistryRead>,
    registry: web::Data<Registry>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    let ListQuery {
        status,
        q,
        cursor,
        limit,
    } = query.into_inner();
    let (services, next_cursor) = registry
        .list(ListServices {
            status,
            text: q,
            cursor,
            limit,
        })
        .await?;
    Ok(HttpResponse::Ok().json(ServicePage {
        services,
        next_cursor,
    }))
}

/// One service with its tools.
#[utoipa::path(
    tag = "services",
    security(("bearer" = ["registry:read"]), ("api_key" = ["registry:read"])),
    params(("name" = String, Path, description = "Service name")),
    responses(
        (status = 200, description = "The service", body = ServiceView,
            headers(("ETag" = String, description = "The revision, for `If-Match`"))),
        (status = 404, description = "No such service", body = ErrorBody),
    )
)]
#[get("/services/{name}")]
async fn get_service(
    _auth: Authorized<RegistryRead>,
    registry: web::Data<Registry>,
    name: web::Path<String>,
) -> Result<HttpResponse> {
    let service = registry.get(&name).await?;
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, etag(service.revision)))
        .json(service))
}

/// Change description, transport or the enabled flag. Only the fields given
/// change. A new transport is discovered before anything is stored.
#[utoipa::path(
    tag = "services",
    security(("bearer" = ["registry:write"]), ("api_key" = ["registry:write"])),
    params(
        ("name" = String, Path, description = "Service name"),
        ("If-Match" = Option<String>, Header, description = "The `ETag` last read; a stale one answers 412"),
    ),
    request_body = UpdateService,
    responses(
        (status = 200, description = "The service after the change", body = ServiceView,
            headers(("ETag" = String, description = "The new revision"))),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
        (status = 409, description = "Changed by someone else meanwhile", body = ErrorBody),
        (status = 412, description = "`If-Match` is stale", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
        (status = 502, description = "The new transport could not be reached", body = ErrorBody),
        (status = 504, description = "The new transport did not answer in time", body = ErrorBody),
    )
)]
#[patch("/services/{name}")]
async fn update(
    auth: Authorized<RegistryWrite>,
    registry: web::Data<Registry>,
    name: web::Path<String>,
    req: HttpRequest,
    body: web::Json<UpdateService>,
) -> Result<HttpResponse> {
    let if_match = req
        .headers()
        .get(IF_MATCH)
        .map(|v| IfMatch::parse(v.to_str().unwrap_or("")));
    let service = registry
        .update(&name, body.into_inner(), if_match, &auth)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, etag(service.revision)))
        .json(service))
}

/// Remove a service and its tool endpoints.
#[utoipa::path(
    tag = "services",
    security(("bearer" = ["registry:write"]), ("api_key" = ["registry:write"])),
    params(("name" = String, Path, description = "Service name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such service", body = ErrorBody),
    )
)]
#[delete("/services/{name}")]
async fn delete_service(
    auth: Authorized<RegistryWrite>,
    registry: web::Data<Registry>,
    name: web::Path<String>,
) -> Result<HttpResponse> {
    registry.delete(&name, &auth).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The tools of a service, each with its endpoint and schemas.
#[utoipa::path(
    tag = "services",
    security(("bearer" = ["registry:read"]), ("api_key" = ["registry:read"])),
    params(("name" = String, Path, description = "Service name")),
    responses(
        (status = 200, description = "The tools", body = ToolList),
        (status = 404, description = "No such service", body = ErrorBody),
    )
)]
#[get("/services/{name}/tools")]
async fn tools(
    _auth: Authorized<RegistryRead>,
    registry: web::Data<Registry>,
    name: web::Path<String>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(ToolList {
        tools: registry.tools(&name).await?,
    }))
}

/// List the server's tools again; they are stored (and announced) when they changed.
#[utoipa::path(
    tag = "services",
    security(("bearer" = ["registry:write"]), ("api_key" = ["registry:write"])),
    params(("name" = String, Path, description = "Service name")),
    responses(
        (status = 200, description = "Whether the tools changed, and the service", body = RefreshOutcome),
        (status = 404, description = "No such service", body = ErrorBody),
        (status = 409, description = "Changed by someone else meanwhile", body = ErrorBody),
        (status = 502, description = "The server could not be reached", body = ErrorBody),
        (status = 504, description = "The server did not answer in time", body = ErrorBody),
    )
)]
#[post("/services/{name}/refresh")]
async fn refresh(
    auth: Authorized<RegistryWrite>,
    registry: web::Data<Registry>,
    name: web::Path<String>,
) -> Result<HttpResponse> {
    let outcome = registry.refresh(&name, &auth).await?;
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, etag(outcome.service.revision)))
        .json(outcome))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyView>,
}

/// Create an API key for a machine caller. The answer holds the key; it is
/// never shown again (only its hash is stored).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = ["registry:admin"]), ("api_key" = ["registry:admin"])),
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "The key, shown once", body = CreatedApiKey),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A field is invalid; `details.field` names it", body = ErrorBody),
    )
)]
#[post("/api-keys")]
async fn create_api_key(
    auth: Authorized<RegistryAdmin>,
    registry: web::Data<Registry>,
    body: web::Json<CreateApiKey>,
) -> Result<HttpResponse> {
    let created = api_keys::create(&registry.pool, &auth, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(created))
}

/// Every API key (never the keys themselves), newest first.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = ["registry:admin"]), ("api_key" = ["registry:admin"])),
    responses((status = 200, description = "The keys", body = ApiKeyList))
)]
#[get("/api-keys")]
async fn list_api_keys(
    _auth: Authorized<RegistryAdmin>,
    registry: web::Data<Registry>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(ApiKeyList {
        api_keys: api_keys::list(&registry.pool).await?,
    }))
}

/// Revoke an API key: it stops working at once here and within
/// `MCPO_API_KEY_CACHE_SECS` on other replicas.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = ["registry:admin"]), ("api_key" = ["registry:admin"])),
    params(("id" = uuid::Uuid, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The revoked key", body = ApiKeyView),
        (status = 404, description = "No such key", body = ErrorBody),
    )
)]
#[delete("/api-keys/{id}")]
async fn revoke_api_key(
    auth: Authorized<RegistryAdmin>,
    registry: web::Data<Registry>,
    authenticator: web::Data<Authenticator>,
    id: web::Path<uuid::Uuid>,
) -> Result<HttpResponse> {
    let revoked = api_keys::revoke(&registry.pool, &auth, id.into_inner()).await?;
    authenticator.forget_api_keys();
    Ok(HttpResponse::Ok().json(revoked))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries about this target (a service name or API key id).
    #[param(max_length = 128, pattern = "^[^\\x00]*$")]
    pub target: Option<String>,
    /// The `next_before` of the previous page.
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for older entries; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}

/// The audit trail, newest first: every change to the registry with who made
/// it, when, from where and under which request id.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = ["registry:admin"]), ("api_key" = ["registry:admin"])),
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of entries", body = AuditPage),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
        (status = 422, description = "`limit` or `target` is out of range", body = ErrorBody),
    )
)]
#[get("/audit")]
async fn audit_log(
    _auth: Authorized<RegistryAdmin>,
    registry: web::Data<Registry>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse> {
    let AuditQuery {
        target,
        before,
        limit,
    } = query.into_inner();
    let (entries, next_before) = registry.audit(target, before, limit).await?;
    Ok(HttpResponse::Ok().json(AuditPage {
        entries,
        next_before,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SnapshotQuery {
    /// `pending` (not written to the store yet), `failed` (pending, and the
    /// last attempt failed) or `uploaded`; absent: all.
    #[param(inline)]
    pub status: Option<SnapshotStatus>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// The config store's backlog: how many service config snapshots wait to be
/// written (and how many of those failed their last attempt, with why), and
/// the newest snapshots. A failed write is retried with backoff; the
/// registration it records is never affected.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = ["registry:admin"]), ("api_key" = ["registry:admin"])),
    params(SnapshotQuery),
    responses(
        (status = 200, description = "Counts and the newest snapshots", body = SnapshotReport),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
        (status = 422, description = "`limit` is out of range", body = ErrorBody),
    )
)]
#[get("/config-snapshots")]
async fn config_snapshots(
    _auth: Authorized<RegistryAdmin>,
    registry: web::Data<Registry>,
    store: web::Data<mcpo_core::config::ConfigStore>,
    query: web::Query<SnapshotQuery>,
) -> Result<HttpResponse> {
    let SnapshotQuery { status, limit } = query.into_inner();
    let report = snapshots::report(&registry.pool, &store, status, limit).await?;
    Ok(HttpResponse::Ok().json(report))
}
