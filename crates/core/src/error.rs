//! Stable error codes and the one JSON error body every service answers with:
//! `{"code": "service_not_found", "message": "...", "details": {...}}`.
//! Codes are part of the API: never rename one; add new ones.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

macro_rules! error_codes {
    ($($variant:ident => ($status:ident, $name:literal, $doc:literal)),+ $(,)?) => {
        /// Every error code MCPO answers with, its HTTP status and its meaning.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode { $($variant),+ }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            pub fn status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => StatusCode::$status),+ }
            }

            pub fn name(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name),+ }
            }

            pub fn description(self) -> &'static str {
                match self { $(ErrorCode::$variant => $doc),+ }
            }
        }
    };
}

error_codes! {
    InvalidJson => (BAD_REQUEST, "invalid_json", "The body is not valid JSON, or not the JSON shape expected."),
    BadRequest => (BAD_REQUEST, "bad_request", "The request is malformed (a path, header or body the server cannot read)."),
    InvalidRequest => (UNPROCESSABLE_ENTITY, "invalid_request", "A field has a value that is not allowed; `details.field` names it."),
    InvalidArguments => (UNPROCESSABLE_ENTITY, "invalid_arguments", "The arguments do not match the tool's input schema; `details.errors` lists each problem with its JSON pointer."),
    Unauthenticated => (UNAUTHORIZED, "unauthenticated", "No credentials: send `Authorization: Bearer <access token or API key>` (or `X-Api-Key`)."),
    InvalidToken => (UNAUTHORIZED, "invalid_token", "The access token or API key was refused (expired, not yet valid, wrong issuer or audience, bad signature, unknown key, revoked); the message says which."),
    PermissionDenied => (FORBIDDEN, "permission_denied", "The caller lacks the permission this route needs; `details.required` names it."),
    CommandNotAllowed => (FORBIDDEN, "command_not_allowed", "The stdio command (with its leading arguments) is not on the allowlist, or its environment sets a variable that changes what runs."),
    DestinationNotAllowed => (FORBIDDEN, "destination_not_allowed", "The URL (or a redirect, or what its host resolves to) points at a loopback, private, link-local or non-http destination MCPO does not connect to."),
    ApiKeyNotFound => (NOT_FOUND, "api_key_not_found", "No API key has that id."),
    TooManyRequests => (TOO_MANY_REQUESTS, "too_many_requests", "The caller has too many calls in flight; retry after `Retry-After` seconds."),
    PayloadTooLarge => (PAYLOAD_TOO_LARGE, "payload_too_large", "The body is larger than the service accepts."),
    NotFound => (NOT_FOUND, "not_found", "No such route."),
    MethodNotAllowed => (METHOD_NOT_ALLOWED, "method_not_allowed", "The route exists but not with this method."),
    VersionNotFound => (NOT_FOUND, "version_not_found", "No document was published with that version."),
    ServiceNotFound => (NOT_FOUND, "service_not_found", "No service is registered under that name."),
    ToolNotFound => (NOT_FOUND, "tool_not_found", "The service has no tool with that endpoint name."),
    ServiceNameTaken => (CONFLICT, "service_name_taken", "A service with that name is already registered."),
    PreconditionFailed => (PRECONDITION_FAILED, "precondition_failed", "`If-Match` names a revision the service no longer has; read it again."),
    ServiceDisabled => (SERVICE_UNAVAILABLE, "service_disabled", "The service is disabled by an operator; its tools answer again once it is enabled."),
    ConcurrentChange => (CONFLICT, "concurrent_change", "The service changed while this request ran; read it again and retry."),
    UpstreamUnreachable => (BAD_GATEWAY, "upstream_unreachable", "The MCP server could not be started or reached, or closed the connection."),
    UpstreamProtocolError => (BAD_GATEWAY, "upstream_protocol_error", "The MCP server answered with a JSON-RPC error or something that is not valid MCP."),
    UpstreamRejectedArguments => (UNPROCESSABLE_ENTITY, "upstream_rejected_arguments", "The MCP server refused the arguments (JSON-RPC invalid params)."),
    ToolError => (BAD_GATEWAY, "tool_error", "The tool ran and reported an error (`isError`); `details.content` holds what it said."),
    UpstreamUnavailable => (SERVICE_UNAVAILABLE, "upstream_unavailable", "The MCP server failed recently and is not retried yet; try again after `Retry-After` seconds."),
    UpstreamTimeout => (GATEWAY_TIMEOUT, "upstream_timeout", "The MCP server did not answer in time."),
    DatabaseUnavailable => (SERVICE_UNAVAILABLE, "database_unavailable", "The database cannot be reached right now; retry later."),
    EventsUnavailable => (SERVICE_UNAVAILABLE, "events_unavailable", "The event bus (NATS) cannot be reached right now; retry later."),
    AuthUnavailable => (SERVICE_UNAVAILABLE, "auth_unavailable", "The identity provider's keys cannot be fetched right now, so tokens cannot be checked; retry later."),
    Overloaded => (SERVICE_UNAVAILABLE, "overloaded", "The service, or the executor as a whole, has as many calls running and waiting as it takes; retry after `Retry-After` seconds."),
    NotReady => (SERVICE_UNAVAILABLE, "not_ready", "A dependency of the service is not ready."),
    Internal => (INTERNAL_SERVER_ERROR, "internal_error", "An unexpected error on our side; the request id in the logs tells what."),
}

/// The JSON body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// An error on its way to the caller: a code, a message a person understands,
/// and optional machine-readable details.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds for a `Retry-After` header (429 and 503 answers).
    pub retry_after: Option<u64>,
    /// The `WWW-Authenticate` challenge of 401 and 403 answers.
    pub challenge: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: None,
            retry_after: None,
            challenge: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn with_challenge(mut self, challenge: impl Into<String>) -> Self {
        self.challenge = Some(challenge.into());
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn invalid_field(field: impl Into<String>, problem: impl std::fmt::Display) -> Self {
        let field = field.into();
        ApiError::new(ErrorCode::InvalidRequest, format!("`{field}` {problem}"))
            .with_details(serde_json::json!({ "field": field }))
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code.name().to_owned(),
            message: self.message.clone(),
            details: self.details.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        if self.code == ErrorCode::Internal {
            // The caller gets an opaque message; the cause goes to the log with the request id.
            tracing::error!(error = %self.message, "internal error");
            return HttpResponse::build(self.status_code()).json(ErrorBody {
                code: self.code.name().to_owned(),
                message: "an unexpected error happened; it has been logged".to_owned(),
                details: None,
            });
        }
        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, seconds.to_string()));
        }
        if let Some(challenge) = &self.challenge {
            response.insert_header((actix_web::http::header::WWW_AUTHENTICATE, challenge.clone()));
        }
        response.json(self.body())
    }
}

/// Errors of the shared parts (database, events, MCP client, config).
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("configuration error: {0}")]
    Config(String),
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(String),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("event bus error: {0}")]
    Events(String),
    #[error(transparent)]
    Mcp(#[from] crate::mcp::McpError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for CoreError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        CoreError::DatabaseUnavailable(e.to_string())
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::DatabaseUnavailable(m) => ApiError::new(ErrorCode::DatabaseUnavailable, m),
            CoreError::Events(m) => ApiError::new(ErrorCode::EventsUnavailable, m),
            CoreError::Mcp(e) => e.into(),
            CoreError::Database(diesel::result::Error::DatabaseError(_, info))
                if info.message().contains("statement timeout")
                    || info.message().contains("terminating connection") =>
            {
                ApiError::new(
                    ErrorCode::DatabaseUnavailable,
                    "the database did not answer in time",
                )
            }
            other => ApiError::new(ErrorCode::Internal, other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case_and_not_2xx() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.name()), "duplicate code {}", code.name());
            assert!(code
                .name()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_'));
            assert!(code.status().as_u16() >= 400);
        }
    }

    #[test]
    fn documented_codes_match_the_code() {
        let doc = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/tool-results.md"
        ));
        let table = doc
            .split("## Every error code")
            .nth(1)
            .expect("the doc has the code table");
        let documented: Vec<(&str, &str)> = table
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((code, *cells.get(2)?))
            })
            .collect();
        assert_eq!(
            documented.len(),
            ErrorCode::ALL.len(),
            "every code is documented once"
        );
        for code in ErrorCode::ALL {
            let status = code.status().as_u16().to_string();
            assert!(
                documented.contains(&(code.name(), status.as_str())),
                "{} ({status}) is not documented",
                code.name()
            );
        }
    }
}
