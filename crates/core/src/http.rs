//! HTTP pieces every service mounts: the request-id middleware, JSON error
//! answers for bad bodies and unknown routes, and the health endpoints.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::header::{HeaderName, HeaderValue};
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

/// Unknown route or method: JSON 404/405 instead of an empty body.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
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
    let database = crate::db::ping(&readiness.pool)
        .await
        .err()
        .map(|e| e.to_string());
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
