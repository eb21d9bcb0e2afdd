use mcpo_core::auth::AuthError;
use mcpo_core::mcp::McpError;
use mcpo_core::{ApiError, CoreError, ErrorCode};

/// Everything a registry operation can fail with; `From<RegistryError> for
/// ApiError` below is the one place that picks status and code.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("`{field}` {problem}")]
    InvalidField { field: String, problem: String },
    #[error("a service named `{0}` is already registered")]
    NameTaken(String),
    #[error("no service named `{0}` is registered")]
    ServiceNotFound(String),
    #[error("service `{0}` changed while this request ran; retry")]
    ConcurrentChange(String),
    #[error("service `{name}` is at revision {current}, not the one `If-Match` names")]
    PreconditionFailed { name: String, current: i64 },
    #[error("this deployment has no MCPO_SECRET_KEYS, so it cannot store env or header values (they are kept encrypted); ask an operator to set it")]
    SecretsUnavailable,
    #[error("no API key has id `{0}`")]
    ApiKeyNotFound(uuid::Uuid),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Upstream(#[from] McpError),
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl RegistryError {
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        RegistryError::InvalidField {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl From<diesel::result::Error> for RegistryError {
    fn from(e: diesel::result::Error) -> Self {
        RegistryError::Core(e.into())
    }
}

impl From<mcpo_core::db::PoolError> for RegistryError {
    fn from(e: mcpo_core::db::PoolError) -> Self {
        RegistryError::Core(e.into())
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::InvalidField { field, problem } => {
                ApiError::invalid_field(field, problem)
            }
            RegistryError::NameTaken(_) => {
                ApiError::new(ErrorCode::ServiceNameTaken, e.to_string())
            }
            RegistryError::ServiceNotFound(_) => {
                ApiError::new(ErrorCode::ServiceNotFound, e.to_string())
            }
            RegistryError::ConcurrentChange(_) => {
                ApiError::new(ErrorCode::ConcurrentChange, e.to_string())
            }
            RegistryError::PreconditionFailed { current, .. } => {
                ApiError::new(ErrorCode::PreconditionFailed, e.to_string())
                    .with_details(serde_json::json!({ "revision": current }))
            }
            RegistryError::ApiKeyNotFound(_) => {
                ApiError::new(ErrorCode::ApiKeyNotFound, e.to_string())
            }
            RegistryError::Auth(e) => e.into(),
            RegistryError::SecretsUnavailable => ApiError::new(ErrorCode::NotReady, e.to_string()),
            RegistryError::Upstream(e) => e.into(),
            RegistryError::Core(e) => e.into(),
        }
    }
}
