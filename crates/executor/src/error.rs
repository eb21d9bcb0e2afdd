use mcpo_core::mcp::McpError;

use crate::admission::Refusal;
use mcpo_core::{ApiError, CoreError, ErrorCode};
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("no service named `{0}` is registered")]
    ServiceNotFound(String),
    #[error("service `{0}` is disabled")]
    ServiceDisabled(String),
    #[error("service `{service}` has no tool `{tool}`")]
    ToolNotFound { service: String, tool: String },
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidArguments(String),
    #[error("the arguments do not match the input schema of `{tool}`")]
    ArgumentsRejected { tool: String, errors: Vec<Value> },
    #[error("the structured content of `{tool}` does not match its output schema")]
    OutputRejected { tool: String, errors: Vec<Value> },
    #[error("the tool `{tool}` reported an error")]
    ToolError { tool: String, content: Vec<Value> },
    #[error("service `{service}` failed moments ago; it is retried in {retry_after:?}")]
    Unavailable {
        service: String,
        retry_after: std::time::Duration,
    },
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Upstream(#[from] McpError),
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<ExecutorError> for ApiError {
    fn from(e: ExecutorError) -> Self {
        match e {
            ExecutorError::ServiceNotFound(_) => {
                ApiError::new(ErrorCode::ServiceNotFound, e.to_string())
            }
            ExecutorError::ServiceDisabled(_) => {
                ApiError::new(ErrorCode::ServiceDisabled, e.to_string())
            }
            ExecutorError::ToolNotFound { .. } => {
                ApiError::new(ErrorCode::ToolNotFound, e.to_string())
            }
            ExecutorError::InvalidJson(message) => ApiError::new(ErrorCode::InvalidJson, message),
            ExecutorError::InvalidArguments(message) => {
                ApiError::new(ErrorCode::InvalidRequest, message)
            }
            ExecutorError::ArgumentsRejected { ref errors, .. } => {
                let details = json!({ "errors": errors });
                ApiError::new(ErrorCode::InvalidArguments, e.to_string()).with_details(details)
            }
            ExecutorError::OutputRejected { ref errors, .. } => {
                let details = json!({ "errors": errors });
                ApiError::new(ErrorCode::UpstreamProtocolError, e.to_string()).with_details(details)
            }
            ExecutorError::ToolError { ref content, .. } => {
                let details = json!({ "content": content });
                ApiError::new(ErrorCode::ToolError, e.to_string()).with_details(details)
            }
            ExecutorError::Unavailable { retry_after, .. } => {
                ApiError::new(ErrorCode::UpstreamUnavailable, e.to_string())
                    .with_retry_after(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            ExecutorError::Refused(refusal) => {
                let code = match refusal {
                    Refusal::CallerLimit { .. } => ErrorCode::TooManyRequests,
                    _ => ErrorCode::Overloaded,
                };
                ApiError::new(code, refusal.to_string()).with_retry_after(1)
            }
            ExecutorError::Upstream(e) => e.into(),
            ExecutorError::Core(e) => e.into(),
        }
    }
}
