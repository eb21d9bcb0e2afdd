use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::TransportConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    Active,
    Degraded,
    Unreachable,
    Disabled,
}

impl ServiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Active => "active",
            ServiceStatus::Degraded => "degraded",
            ServiceStatus::Unreachable => "unreachable",
            ServiceStatus::Disabled => "disabled",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "active" => ServiceStatus::Active,
            "degraded" => ServiceStatus::Degraded,
            "unreachable" => ServiceStatus::Unreachable,
            "disabled" => ServiceStatus::Disabled,
            _ => return None,
        })
    }
}

/// What `initialize` + `tools/list` told us about a server.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveredServer {
    pub server_info: Value,
    pub protocol_version: String,
    pub instructions: Option<String>,
    pub tools: Vec<DiscoveredTool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveredTool {
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub input_schema: Value,
    pub output_schema: Option<Value>,
    pub annotations: Option<Value>,
}

/// A service as the APIs show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ServiceView {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub status: ServiceStatus,
    pub transport: TransportConfig,
    pub server_info: Option<Value>,
    pub protocol_version: Option<String>,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the status monitor last reached the server.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// What went wrong at the monitor's last failed check.
    pub last_error: Option<String>,
    /// The limit of one tool call, when it differs from the executor's default.
    pub call_timeout_secs: Option<i32>,
    /// Sessions the executor keeps to the server, shared by callers.
    pub session_pool_size: i32,
    pub session_scope: SessionScope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolView>>,
}

/// Who shares an MCP session with whom.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionScope {
    /// Every caller shares the service's pool of sessions.
    #[default]
    Shared,
    /// Each caller (principal, plus `X-Session-Key` when sent) has a session
    /// of its own, closed after it has been idle a while: for stateful servers.
    PerCaller,
}

impl SessionScope {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionScope::Shared => "shared",
            SessionScope::PerCaller => "per_caller",
        }
    }

    pub fn parse(text: &str) -> SessionScope {
        match text {
            "per_caller" => SessionScope::PerCaller,
            _ => SessionScope::Shared,
        }
    }
}

/// A tool as the APIs show it. `endpoint` is the full URL of the executor
/// endpoint when built for an API answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ToolView {
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub endpoint: String,
    pub input_schema: Value,
    pub output_schema: Option<Value>,
    pub annotations: Option<Value>,
}
