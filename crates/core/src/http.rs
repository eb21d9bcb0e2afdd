//! HTTP pieces every service mounts: the request-id middleware, JSON error
//! answers for bad bodies and unknown routes, and the health endpoints.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::ResourceDef;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers, Next};
use actix_web::ResponseError;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde_json::json;
use tracing::Instrument;

use crate::db::DbPool;
use crate::error::{ApiError, ErrorCode};
use crate::events::EventBus;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
const MAX_REQUEST_ID_LEN: usize = 128;

/// The request id of the current request, in request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Takes `X-Request-Id` when it is a sane token, or makes one; runs the request
/// in a span carrying it; returns it on the answer; logs one line per request.
pub async fn request_id_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID_LEN
                && v.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let span = tracing::info_span!("request", request_id = %request_id, method = %req.method(), path = %req.path());
    let started = Instant::now();
    let mut response = next.call(req).instrument(span.clone()).await?;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request finished"
        )
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    Ok(response)
}

/// JSON body settings with errors as our JSON: a body that is not JSON is 400
/// `invalid_json`; JSON of the wrong shape (missing, unknown or mistyped field)
/// is 422 `invalid_request` with serde's message, which names the field.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| {
            use actix_web::error::JsonPayloadError;
            let api = match &err {
                JsonPayloadError::OverflowKnownLength { .. }
                | JsonPayloadError::Overflow { .. } => {
                    ApiError::new(ErrorCode::PayloadTooLarge, err.to_string())
                }
                JsonPayloadError::ContentType => ApiError::new(
                    ErrorCode::InvalidJson,
                    "the body must be JSON with `Content-Type: application/json`",
                ),
                JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("the body does not have the expected shape: {e}"),
                ),
                JsonPayloadError::Deserialize(e) => ApiError::new(
                    ErrorCode::InvalidJson,
                    format!("the body is not valid JSON: {e}"),
                ),
                other => ApiError::new(ErrorCode::InvalidJson, other.to_string()),
            };
            api.into()
        })
}

/// Query-string errors as our JSON: 400 `bad_request` with serde's message,
/// which names the parameter.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("invalid query string: {err}"),
        )
        .into()
    })
}

/// Renders errors that did not come from our handlers (actix's own: payload
/// too large, unreadable body, unknown method) as our JSON error body, so
/// every non-2xx answer of every service has a `code`.
pub fn json_errors<B: MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(|res: ServiceResponse<B>| {
        let is_json = res
            .response()
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if is_json {
            return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
        }
        let status = res.status();
        let code = match status.as_u16() {
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            413 => ErrorCode::PayloadTooLarge,
            503 => ErrorCode::NotReady,
            400..=499 => ErrorCode::BadRequest,
            _ => ErrorCode::Internal,
        };
        let message = res
            .response()
            .error()
            .map(|e| e.to_string())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
        let (req, _) = res.into_parts();
        let mut response = ApiError::new(code, message).error_response();
        // Keep the status actix chose (e.g. 400 vs 413) even for codes that share one.
        *response.status_mut() = status;
        Ok(ErrorHandlerResponse::Response(
            ServiceResponse::new(req, response).map_into_right_body(),
        ))
    })
}

/// The paths a service serves and their methods, so that the fallback can
/// tell "no such path" (404) from "not with this method" (405 with `Allow`).
#[derive(Clone, Default)]
pub struct KnownRoutes(Vec<(ResourceDef, Vec<Method>)>);

impl KnownRoutes {
    /// Patterns in actix/OpenAPI form (`/tools/{service}/{tool}`).
    pub fn new(routes: &[(&str, &[Method])]) -> Self {
        let mut known = KnownRoutes::default();
        for (pattern, methods) in routes {
            known.add(pattern, methods.to_vec());
        }
        known.add("/healthz", vec![Method::GET]);
        known.add("/readyz", vec![Method::GET]);
        known
    }

    /// Every path and method of an OpenAPI document.
    pub fn with_openapi(mut self, api: &utoipa::openapi::OpenApi) -> Self {
        for (path, item) in &api.paths.paths {
            let methods = [
                (Method::GET, item.get.is_some()),
                (Method::POST, item.post.is_some()),
                (Method::PUT, item.put.is_some()),
                (Method::PATCH, item.patch.is_some()),
                (Method::DELETE, item.delete.is_some()),
            ];
            self.add(
                path,
                methods
                    .into_iter()
                    .filter(|(_, has)| *has)
                    .map(|(m, _)| m)
                    .collect(),
            );
        }
        self
    }

    fn add(&mut self, pattern: &str, methods: Vec<Method>) {
        self.0.push((ResourceDef::new(pattern), methods));
    }

    fn allowed(&self, path: &str) -> Option<Vec<Method>> {
        let methods: Vec<Method> = self
            .0
            .iter()
            .filter(|(def, _)| def.is_match(path))
            .flat_map(|(_, methods)| methods.iter().cloned())
            .collect();
        (!methods.is_empty()).then_some(methods)
    }
}

/// Unknown route (404) or known route with another method (405), as JSON.
pub async fn not_found(req: HttpRequest, known: Option<web::Data<KnownRoutes>>) -> HttpResponse {
    if let Some(allowed) = known.and_then(|k| k.allowed(req.path())) {
        let allow = allowed
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let mut response = ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!(
                "{} {} is not supported; use {allow}",
                req.method(),
                req.path()
            ),
        )
        .error_response();
        if let Ok(value) = HeaderValue::from_str(&allow) {
            response
                .headers_mut()
                .insert(actix_web::http::header::ALLOW, value);
        }
        return response;
    }
    ApiError::new(
        ErrorCode::NotFound,
        format!("no route for {} {}", req.method(), req.path()),
    )
    .error_response()
}

/// What `/readyz` checks. NATS is reported always but required only where
/// the service cannot work without it (the registry's outbox covers outages).
#[derive(Clone)]
pub struct Readiness {
    pub pool: DbPool,
    pub bus: EventBus,
    pub require_nats: bool,
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn readyz(readiness: web::Data<Readiness>) -> Result<HttpResponse, ApiError> {
    // Probes answer without credentials: the cause goes to the log only.
    let database = crate::db::ping(&readiness.pool).await.err().map(|e| {
        tracing::warn!(error = %e, "readiness: database unreachable");
        "unreachable".to_owned()
    });
    let nats = (!readiness.bus.is_connected()).then(|| "not connected".to_owned());
    if database.is_none() && (nats.is_none() || !readiness.require_nats) {
        return Ok(HttpResponse::Ok().json(
            json!({ "status": "ready", "nats": nats.unwrap_or_else(|| "connected".into()) }),
        ));
    }
    Err(
        ApiError::new(ErrorCode::NotReady, "a dependency is not ready")
            .with_details(json!({ "database": database, "nats": nats })),
    )
}

/// Mounts `/healthz` and `/readyz`; the app must hold `web::Data<Readiness>`.
pub fn health_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

/// The request id for handlers that pass it on (e.g. in error logs).
pub fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions().get::<RequestId>().map(|id| id.0.clone())
}
