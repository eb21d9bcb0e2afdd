//! Calling a tool: find its route, check the arguments are an object, reuse
//! the service's session, map the result.

use std::sync::Arc;
use std::time::Duration;

use mcpo_core::mcp::{McpError, Progress};
use serde_json::{Map, Value};

use crate::admission::Admission;
use crate::error::ExecutorError;
use crate::results::{self, Answer};
use crate::routing::{RoutingTable, ToolRoute};
use crate::sessions::{SessionError, Sessions};

/// What a call takes from its HTTP request.
pub struct CallRequest {
    pub request_id: Option<String>,
    pub keys: CallerKeys,
    /// The `Accept` header: raw bytes for an image or audio result it names.
    pub accept: Option<String>,
}

/// Who is calling, as the executor counts it.
pub struct CallerKeys {
    /// Whose share of the call limits a call uses.
    pub share: String,
    /// Which session a `per_caller` service gives the call.
    pub session: String,
}

pub struct Executor {
    pub routes: Arc<RoutingTable>,
    pub sessions: Arc<Sessions>,
    pub admission: Arc<Admission>,
    pub call_timeout: Duration,
}

impl Executor {
    #[tracing::instrument(skip(self, body, request, progress), fields(service = %service, tool = %endpoint_name, caller = %request.keys.share))]
    pub async fn call(
        &self,
        service: &str,
        endpoint_name: &str,
        body: &[u8],
        request: &CallRequest,
        progress: Option<tokio::sync::mpsc::UnboundedSender<Progress>>,
    ) -> Result<Answer, ExecutorError> {
        let caller = &request.keys;
        let arguments = parse_arguments(body)?;
        let route = self
            .routes
            .service_with_tool(service, endpoint_name)
            .await?
            .ok_or_else(|| ExecutorError::ServiceNotFound(service.to_owned()))?;
        let tool = route
            .tools
            .get(endpoint_name)
            .ok_or_else(|| ExecutorError::ToolNotFound {
                service: service.to_owned(),
                tool: endpoint_name.to_owned(),
            })?;
        check_arguments(tool, arguments.as_ref())?;
        if route.disabled {
            return Err(ExecutorError::ServiceDisabled(service.to_owned()));
        }
        let timeout = route.call_timeout.unwrap_or(self.call_timeout);
        let _permit = self
            .admission
            .admit(route.id, service, &caller.share, timeout)
            .await?;
        let session = self
            .sessions
            .get(&route, &caller.session)
            .await
            .map_err(|e| match e {
                SessionError::Connect(e) => ExecutorError::Upstream(e),
                SessionError::Open { retry_after } => ExecutorError::Unavailable {
                    service: service.to_owned(),
                    retry_after,
                },
                SessionError::TooManyCallers { limit } => {
                    ExecutorError::Refused(crate::admission::Refusal::TooManySessions {
                        service: service.to_owned(),
                        limit,
                    })
                }
            })?;
        match session
            .call_tool(
                &tool.name,
                arguments,
                timeout,
                request.request_id.as_deref(),
                progress,
            )
            .await
        {
            Ok(result) => results::to_answer(tool, result, request.accept.as_deref()),
            Err(e) => {
                if matches!(e, McpError::Closed) || session.is_closed() {
                    // Next call opens a fresh session; this one is not retried
                    // because the server may already have run the tool.
                    self.sessions.discard_session(route.id, &session);
                }
                Err(e.into())
            }
        }
    }
}

/// At most this many schema errors are listed in one answer.
const MAX_LISTED_ERRORS: usize = 50;

/// Checks the arguments against the tool's input schema, so a bad call is
/// answered here and the server is not contacted.
fn check_arguments(
    tool: &ToolRoute,
    arguments: Option<&Map<String, Value>>,
) -> Result<(), ExecutorError> {
    let Some(validator) = &tool.validator else {
        return Ok(());
    };
    let empty = Map::new();
    let instance = Value::Object(arguments.unwrap_or(&empty).clone());
    let errors: Vec<Value> = validator
        .iter_errors(&instance)
        .take(MAX_LISTED_ERRORS)
        .map(|e| serde_json::json!({ "pointer": e.instance_path().to_string(), "message": e.to_string() }))
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(ExecutorError::ArgumentsRejected {
        tool: tool.name.clone(),
        errors,
    })
}

/// The body is the tool's arguments: a JSON object, or nothing for a tool
/// without arguments.
fn parse_arguments(body: &[u8]) -> Result<Option<Map<String, Value>>, ExecutorError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(ExecutorError::InvalidArguments(
            "the body must be a JSON object holding the tool's arguments".into(),
        )),
        Err(e) => Err(ExecutorError::InvalidJson(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        assert!(parse_arguments(b"").unwrap().is_none());
        assert!(parse_arguments(b" \n").unwrap().is_none());
        assert_eq!(parse_arguments(br#"{"a":1}"#).unwrap().unwrap()["a"], 1);
        assert!(matches!(
            parse_arguments(b"[1]"),
            Err(ExecutorError::InvalidArguments(_))
        ));
        assert!(matches!(
            parse_arguments(b"{"),
            Err(ExecutorError::InvalidJson(_))
        ));
    }
}
