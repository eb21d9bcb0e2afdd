//! HTTP handlers: extract, call `Registry`, map the answer. Each is registered
//! through utoipa-actix-web, so the published document and the router are
//! built from the same declarations and cannot drift.

use actix_web::http::header::{ETAG, IF_MATCH};
use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use mcpo_core::domain::{ServiceStatus, ServiceView, ToolView};
use mcpo_core::error::ErrorBody;
use mcpo_core::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_actix_web::scope::scope;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::config_file::McpServersFile;
use crate::services::{
    etag, IfMatch, ImportReport, ListServices, RefreshOutcome, RegisterService, Registry,
    UpdateService,
};

type Result<T> = std::result::Result<T, ApiError>;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MCPO registry API",
        description = "Register MCP servers; MCPO discovers their tools and serves each as a REST endpoint of the tool executor. Every error answers `{code, message, details?}` with a stable code."
    ),
    tags((name = "services", description = "Registered MCP servers and their tools")),
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
            .service(refresh),
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

/// Register an MCP server: MCPO connects, initializes, lists every tool and
/// stores the service only if all of that worked.
#[utoipa::path(
    tag = "services",
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
    registry: web::Data<Registry>,
    body: web::Json<RegisterService>,
) -> Result<HttpResponse> {
    let service = registry.register(body.into_inner()).await?;
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
    request_body = McpServersFile,
    responses(
        (status = 200, description = "What happened to each entry", body = ImportReport),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Not an mcpServers file, or too many entries", body = ErrorBody),
    )
)]
#[post("/services:import")]
async fn import(
    registry: web::Data<Registry>,
    body: web::Json<McpServersFile>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(registry.import(body.into_inner()).await?))
}

/// Every service as an `{"mcpServers": {...}}` file. Env and header values
/// are redacted.
#[utoipa::path(
    tag = "services",
    responses((status = 200, description = "The file", body = McpServersFile))
)]
#[get("/services:export")]
async fn export(registry: web::Data<Registry>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(registry.export().await?))
}

/// List services, a page at a time, optionally filtered.
#[utoipa::path(
    tag = "services",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of services (without their tools)", body = ServicePage),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
        (status = 422, description = "`limit` is out of range", body = ErrorBody),
    )
)]
#[get("/services")]
async fn list(registry: web::Data<Registry>, query: web::Query<ListQuery>) -> Result<HttpResponse> {
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
    params(("name" = String, Path, description = "Service name")),
    responses(
        (status = 200, description = "The service", body = ServiceView,
            headers(("ETag" = String, description = "The revision, for `If-Match`"))),
        (status = 404, description = "No such service", body = ErrorBody),
    )
)]
#[get("/services/{name}")]
async fn get_service(
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
    registry: web::Data<Registry>,
    name: web::Path<String>,
    req: HttpRequest,
    body: web::Json<UpdateService>,
) -> Result<HttpResponse> {
    let if_match = req
        .headers()
        .get(IF_MATCH)
        .map(|v| IfMatch::parse(v.to_str().unwrap_or("")));
    let service = registry.update(&name, body.into_inner(), if_match).await?;
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, etag(service.revision)))
        .json(service))
}

/// Remove a service and its tool endpoints.
#[utoipa::path(
    tag = "services",
    params(("name" = String, Path, description = "Service name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such service", body = ErrorBody),
    )
)]
#[delete("/services/{name}")]
async fn delete_service(
    registry: web::Data<Registry>,
    name: web::Path<String>,
) -> Result<HttpResponse> {
    registry.delete(&name).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The tools of a service, each with its endpoint and schemas.
#[utoipa::path(
    tag = "services",
    params(("name" = String, Path, description = "Service name")),
    responses(
        (status = 200, description = "The tools", body = ToolList),
        (status = 404, description = "No such service", body = ErrorBody),
    )
)]
#[get("/services/{name}/tools")]
async fn tools(registry: web::Data<Registry>, name: web::Path<String>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(ToolList {
        tools: registry.tools(&name).await?,
    }))
}

/// List the server's tools again; they are stored (and announced) when they changed.
#[utoipa::path(
    tag = "services",
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
async fn refresh(registry: web::Data<Registry>, name: web::Path<String>) -> Result<HttpResponse> {
    let outcome = registry.refresh(&name).await?;
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, etag(outcome.service.revision)))
        .json(outcome))
}
