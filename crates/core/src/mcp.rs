//! MCPO's one door to MCP servers: connect over any transport, list tools,
//! call a tool, close. rmcp stays behind this module; callers see our types
//! and `McpError`.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig,
    ErrorCode as JsonRpcCode, Implementation, JsonObject,
};
use rmcp::service::{ClientInitializeError, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{Peer, RoleClient, ServiceExt};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::domain::{DiscoveredServer, DiscoveredTool, TransportConfig};
use crate::egress::{EgressError, EgressPolicy, StdioPolicy};
use crate::error::{ApiError, ErrorCode};

pub use rmcp::model::{CallToolResult as ToolCallResult, ContentBlock};

mod sse;

/// The `_meta` key carrying the caller's request id on every tool call.
pub const REQUEST_ID_META_KEY: &str = "mcpo/requestId";

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("cannot start `{command}`: {reason}")]
    Spawn { command: String, reason: String },
    #[error("the MCP server could not be reached or did not complete initialization: {0}")]
    Connect(String),
    #[error("the MCP server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the connection to the MCP server is closed")]
    Closed,
    #[error("the MCP server answered with error {code}: {message}")]
    JsonRpc { code: i32, message: String },
    #[error("the MCP server sent an unexpected answer: {0}")]
    Protocol(String),
    #[error("{0}")]
    Forbidden(EgressError),
}

/// What MCPO may run and connect to: checked before every connection, by
/// the registry and by the executor alike.
#[derive(Debug, Clone, Default)]
pub struct ConnectPolicy {
    pub egress: EgressPolicy,
    pub stdio: StdioPolicy,
}

impl ConnectPolicy {
    pub fn from_settings(settings: &crate::Settings) -> ConnectPolicy {
        ConnectPolicy {
            egress: settings.egress.clone(),
            stdio: settings.stdio.clone(),
        }
    }

    /// Checks what can be checked before connecting: the stdio allowlist, or
    /// the URL and what its host resolves to now.
    pub async fn check(&self, transport: &TransportConfig) -> Result<(), McpError> {
        match transport {
            TransportConfig::Stdio { command, args, env } => self.stdio.check(command, args, env),
            TransportConfig::StreamableHttp { url, .. } | TransportConfig::Sse { url, .. } => {
                let parsed = url::Url::parse(url).map_err(|e| McpError::Connect(e.to_string()))?;
                self.egress.check_destination(&parsed).await
            }
        }
        .map_err(McpError::Forbidden)
    }
}

impl From<McpError> for ApiError {
    fn from(e: McpError) -> Self {
        let code = match &e {
            McpError::Spawn { .. } | McpError::Connect(_) | McpError::Closed => {
                ErrorCode::UpstreamUnreachable
            }
            McpError::Timeout(_) => ErrorCode::UpstreamTimeout,
            McpError::JsonRpc { code, .. } if *code == JsonRpcCode::INVALID_PARAMS.0 => {
                ErrorCode::UpstreamRejectedArguments
            }
            McpError::JsonRpc { .. } | McpError::Protocol(_) => ErrorCode::UpstreamProtocolError,
            McpError::Forbidden(
                EgressError::CommandNotAllowed { .. } | EgressError::EnvNotAllowed { .. },
            ) => ErrorCode::CommandNotAllowed,
            McpError::Forbidden(_) => ErrorCode::DestinationNotAllowed,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<ServiceError> for McpError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::McpError(data) => McpError::JsonRpc {
                code: data.code.0,
                message: data.message.to_string(),
            },
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => McpError::Closed,
            ServiceError::Timeout { timeout } => McpError::Timeout(timeout),
            other => McpError::Protocol(other.to_string()),
        }
    }
}

/// Progress a server reported for a call in flight (`notifications/progress`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Progress {
    pub progress: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Calls waiting for progress, by progress token.
type ProgressRoutes = Arc<
    std::sync::Mutex<
        std::collections::HashMap<String, tokio::sync::mpsc::UnboundedSender<Progress>>,
    >,
>;

/// Our side of a session: who we are, and where progress notifications go.
#[derive(Clone)]
struct McpoClient {
    info: ClientConfig,
    progress: ProgressRoutes,
    /// Signalled when the server says its tool list changed.
    tools_changed: Arc<tokio::sync::Notify>,
}

impl rmcp::ClientHandler for McpoClient {
    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }

    fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) -> impl std::future::Future<Output = ()> + rmcp::service::MaybeSendFuture + '_ {
        let routes = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(listener) = routes.get(&token_key(&params.progress_token)) {
            let _ = listener.send(Progress {
                progress: params.progress,
                total: params.total,
                message: params.message.clone(),
            });
        }
        std::future::ready(())
    }

    fn on_tool_list_changed(
        &self,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) -> impl std::future::Future<Output = ()> + rmcp::service::MaybeSendFuture + '_ {
        // One stored permit: a burst of notifications is one re-list.
        self.tools_changed.notify_one();
        std::future::ready(())
    }
}

fn token_key(token: &rmcp::model::ProgressToken) -> String {
    match &token.0 {
        rmcp::model::NumberOrString::Number(n) => n.to_string(),
        rmcp::model::NumberOrString::String(s) => s.to_string(),
    }
}

fn client_info() -> McpoClient {
    McpoClient {
        info: ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("mcpo", env!("CARGO_PKG_VERSION")),
        ),
        progress: Default::default(),
        tools_changed: Default::default(),
    }
}

/// An initialized MCP session. Cheap to share: calls go through `Peer`, which
/// multiplexes concurrent requests over the one connection.
pub struct McpSession {
    running: RunningService<RoleClient, McpoClient>,
}

impl McpSession {
    /// Starts or reaches the server and runs `initialize`, all within `timeout`.
    pub async fn connect(
        transport: &TransportConfig,
        timeout: Duration,
        label: &str,
        policy: &ConnectPolicy,
    ) -> Result<McpSession, McpError> {
        policy.check(transport).await?;
        let violations = std::sync::OnceLock::new();
        // One deadline for the whole connection: the SSE transport's own
        // clearer errors (no `endpoint` event...) fire at it, before ours.
        let deadline = tokio::time::Instant::now() + timeout;
        let connecting = async {
            match transport {
                TransportConfig::Stdio { command, args, env } => {
                    let child = spawn_stdio(command, args, env, label)?;
                    client_info().serve(child).await.map_err(init_error)
                }
                TransportConfig::StreamableHttp { url, headers } => {
                    let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                        .custom_headers(custom_headers(headers)?.into_iter().collect());
                    let (http, seen) = http_client(policy, timeout)?;
                    let _ = violations.set(seen);
                    let transport = StreamableHttpClientTransport::with_client(http, config);
                    client_info().serve(transport).await.map_err(init_error)
                }
                TransportConfig::Sse { url, headers } => {
                    let custom = custom_headers(headers)?.into_iter().collect();
                    let (http, seen) = http_client(policy, timeout)?;
                    let _ = violations.set(seen);
                    let transport = sse::SseTransport::connect(
                        http,
                        url,
                        custom,
                        &policy.egress,
                        timeout,
                        deadline,
                        label,
                    )
                    .await?;
                    client_info().serve(transport).await.map_err(init_error)
                }
            }
        };
        let connected = tokio::time::timeout_at(deadline, connecting)
            .await
            .map_err(|_| McpError::Timeout(timeout))?;
        // A refused redirect or resolution surfaces from rmcp as a generic
        // transport error; the policy's own record says what it was.
        if let Some(refusal) = violations.get().and_then(|v| v.take()) {
            return Err(McpError::Forbidden(refusal));
        }
        let running = connected.map_err(|e| redact_url(e, transport))?;
        Ok(McpSession { running })
    }

    pub fn peer(&self) -> &Peer<RoleClient> {
        self.running.peer()
    }

    /// Whether the server promised `notifications/tools/list_changed`.
    pub fn announces_tool_changes(&self) -> bool {
        self.peer()
            .peer_info()
            .and_then(|info| {
                info.capabilities
                    .tools
                    .as_ref()
                    .and_then(|t| t.list_changed)
            })
            .unwrap_or(false)
    }

    /// Signalled (one stored permit) each time the server announces that its
    /// tool list changed.
    pub fn tool_list_changes(&self) -> Arc<tokio::sync::Notify> {
        self.running.service().tools_changed.clone()
    }

    pub fn is_closed(&self) -> bool {
        self.running.is_closed() || self.running.peer().is_transport_closed()
    }

    /// Every tool, following `nextCursor` until the last page.
    pub async fn list_tools(&self) -> Result<Vec<DiscoveredTool>, McpError> {
        let tools = self.peer().list_all_tools().await?;
        tools
            .into_iter()
            .map(|tool| {
                Ok(DiscoveredTool {
                    name: tool.name.to_string(),
                    title: tool
                        .title
                        .clone()
                        .or_else(|| tool.annotations.as_ref().and_then(|a| a.title.clone())),
                    description: tool.description.as_ref().map(|d| d.to_string()),
                    input_schema: serde_json::Value::Object((*tool.input_schema).clone()),
                    output_schema: tool
                        .output_schema
                        .as_ref()
                        .map(|s| serde_json::Value::Object((**s).clone())),
                    annotations: tool
                        .annotations
                        .as_ref()
                        .map(serde_json::to_value)
                        .transpose()
                        .map_err(|e| McpError::Protocol(e.to_string()))?,
                })
            })
            .collect()
    }

    /// A JSON-RPC `ping`, answered within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> Result<(), McpError> {
        let request = rmcp::model::ClientRequest::PingRequest(Default::default());
        tokio::time::timeout(timeout, self.peer().send_request(request))
            .await
            .map_err(|_| McpError::Timeout(timeout))??;
        Ok(())
    }

    /// What `initialize` told us, plus the tool list.
    pub async fn discover(&self) -> Result<DiscoveredServer, McpError> {
        let info = self
            .peer()
            .peer_info()
            .ok_or_else(|| McpError::Protocol("no initialize result".into()))?;
        let tools = self.list_tools().await?;
        // Postgres stores neither text nor jsonb with NUL in it.
        let listed = serde_json::to_string(
            &tools
                .iter()
                .map(|t| {
                    (
                        &t.name,
                        &t.title,
                        &t.description,
                        &t.input_schema,
                        &t.output_schema,
                        &t.annotations,
                    )
                })
                .collect::<Vec<_>>(),
        )
        .map_err(|e| McpError::Protocol(e.to_string()))?;
        if listed.contains("\\u0000")
            || info
                .instructions
                .as_deref()
                .is_some_and(|i| i.contains('\0'))
        {
            return Err(McpError::Protocol(
                "the server's tool list contains NUL characters, which MCPO cannot store".into(),
            ));
        }
        Ok(DiscoveredServer {
            server_info: serde_json::to_value(&info.server_info)
                .map_err(|e| McpError::Protocol(e.to_string()))?,
            protocol_version: info.protocol_version.to_string(),
            instructions: info.instructions.clone(),
            tools,
        })
    }

    /// Calls a tool. `request_id` goes to the server in the request's `_meta`
    /// (as `mcpo/requestId`), so its logs can be joined with ours. With
    /// `progress`, the call carries a progress token and what the server
    /// reports for it is sent there.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Option<JsonObject>,
        timeout: Duration,
        request_id: Option<&str>,
        progress: Option<tokio::sync::mpsc::UnboundedSender<Progress>>,
    ) -> Result<CallToolResult, McpError> {
        let mut params = CallToolRequestParams::new(name.to_owned());
        params.arguments = arguments;
        if let Some(id) = request_id {
            let mut meta = rmcp::model::RequestMetaObject::new();
            meta.0 .0.insert(REQUEST_ID_META_KEY.into(), id.into());
            params.meta = Some(meta);
        }
        let calling = async {
            match progress {
                // Dropping this future (timeout, caller gone) makes rmcp send
                // `notifications/cancelled`.
                None => self.peer().call_tool(params).await.map_err(McpError::from),
                Some(listener) => self.call_tool_with_progress(params, listener).await,
            }
        };
        tokio::time::timeout(timeout, calling)
            .await
            .map_err(|_| McpError::Timeout(timeout))?
    }

    /// rmcp gives every request its own progress token; the listener is
    /// registered under it as soon as the request is sent (progress cannot
    /// arrive before the server has the request).
    async fn call_tool_with_progress(
        &self,
        params: CallToolRequestParams,
        listener: tokio::sync::mpsc::UnboundedSender<Progress>,
    ) -> Result<CallToolResult, McpError> {
        let request =
            rmcp::model::ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(params));
        let handle = self
            .peer()
            .send_cancellable_request(request, rmcp::service::PeerRequestOptions::no_options())
            .await?;
        let _listening = ProgressListener::add(
            &self.running.service().progress,
            token_key(&handle.progress_token),
            listener,
        );
        let mut abandoned = CancelOnDrop(Some((self.peer().clone(), handle.id.clone())));
        let answer = handle.await_response().await;
        abandoned.0 = None;
        // Progress handlers run as tasks queued before the answer was
        // delivered: let them run before the listener goes away.
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        match answer? {
            rmcp::model::ServerResult::CallToolResult(result) => Ok(result),
            other => Err(McpError::Protocol(format!(
                "expected a tool result, got {}",
                serde_json::to_string(&other).unwrap_or_default()
            ))),
        }
    }

    /// Ends the session: closes the transport and, for stdio, stops the process.
    pub async fn close(mut self) {
        let _ = self
            .running
            .close_with_timeout(Duration::from_secs(3))
            .await;
    }
}

/// Tells the server a request was abandoned, unless disarmed.
struct CancelOnDrop(Option<(Peer<RoleClient>, rmcp::model::RequestId)>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some((peer, id)) = self.0.take() else {
            return;
        };
        let cancelled = rmcp::model::ClientNotification::CancelledNotification(
            rmcp::model::CancelledNotification::new(rmcp::model::CancelledNotificationParam::new(
                Some(id),
                Some("the caller went away".into()),
            )),
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = peer.send_notification(cancelled).await;
            });
        }
    }
}

/// A progress route, removed when the call ends however it ends.
struct ProgressListener {
    routes: ProgressRoutes,
    token: String,
}

impl ProgressListener {
    fn add(
        routes: &ProgressRoutes,
        token: String,
        listener: tokio::sync::mpsc::UnboundedSender<Progress>,
    ) -> ProgressListener {
        routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.clone(), listener);
        ProgressListener {
            routes: routes.clone(),
            token,
        }
    }
}

impl Drop for ProgressListener {
    fn drop(&mut self) {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.token);
    }
}

/// Connects, lists everything and closes: what registration and refresh need.
pub async fn discover(
    transport: &TransportConfig,
    timeout: Duration,
    label: &str,
    policy: &ConnectPolicy,
) -> Result<DiscoveredServer, McpError> {
    let session = McpSession::connect(transport, timeout, label, policy).await?;
    let discovered = tokio::time::timeout(timeout, session.discover()).await;
    session.close().await;
    discovered.map_err(|_| McpError::Timeout(timeout))?
}

/// The registrant's headers, as HTTP takes them (validated at registration).
fn custom_headers(
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>, McpError> {
    headers
        .iter()
        .map(|(name, value)| {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| McpError::Connect(format!("header {name}: {e}")))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|e| McpError::Connect(format!("header {name}: {e}")))?;
            Ok((name, value))
        })
        .collect()
}

/// An HTTP client held to the egress policy on every connection and
/// redirect; the record says whether the policy refused something.
fn http_client(
    policy: &ConnectPolicy,
    timeout: Duration,
) -> Result<(reqwest::Client, crate::egress::EgressViolations), McpError> {
    let (builder, seen) = policy
        .egress
        .apply(reqwest::Client::builder().connect_timeout(timeout));
    let http = builder
        .build()
        .map_err(|e| McpError::Connect(e.to_string()))?;
    Ok((http, seen))
}

/// HTTP client errors quote the URL, and a query string may carry a token:
/// callers and logs get the URL without it.
fn redact_url(error: McpError, transport: &TransportConfig) -> McpError {
    let (TransportConfig::StreamableHttp { url, .. } | TransportConfig::Sse { url, .. }) =
        transport
    else {
        return error;
    };
    let Ok(mut shown) = url::Url::parse(url) else {
        return error;
    };
    if shown.query().is_none() {
        return error;
    }
    shown.set_query(None);
    let hide = |text: String| text.replace(url.as_str(), shown.as_str());
    match error {
        McpError::Connect(text) => McpError::Connect(hide(text)),
        McpError::Protocol(text) => McpError::Protocol(hide(text)),
        McpError::JsonRpc { code, message } => McpError::JsonRpc {
            code,
            message: hide(message),
        },
        other => other,
    }
}

fn init_error(e: ClientInitializeError) -> McpError {
    match e {
        ClientInitializeError::JsonRpcError(data) => McpError::JsonRpc {
            code: data.code.0,
            message: data.message.to_string(),
        },
        other => McpError::Connect(other.to_string()),
    }
}

/// What a stdio server inherits from MCPO's environment: enough to find
/// programs, a home for caches (npm, uv), locale and time zone.
const INHERITED_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
];

/// Spawns the server in its own process group, so launchers such as `npx`
/// that start a grandchild are stopped with it. The server's stderr goes to
/// our log, line by line, tagged with the service.
fn spawn_stdio(
    command: &str,
    args: &[String],
    env: &std::collections::BTreeMap<String, String>,
    label: &str,
) -> Result<TokioChildProcess, McpError> {
    let mut cmd = tokio::process::Command::new(command);
    // The server gets a basic environment plus its own `env`, never ours:
    // MCPO's holds the database URL and the secret keys.
    cmd.env_clear()
        .envs(
            INHERITED_ENV
                .iter()
                .filter_map(|name| Some((name, std::env::var_os(name)?))),
        )
        .args(args)
        .envs(env);
    let mut wrapped = CommandWrap::from(cmd);
    wrapped.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
    let (child, stderr) = TokioChildProcess::builder(wrapped)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| McpError::Spawn {
            command: command.to_owned(),
            reason: e.to_string(),
        })?;
    if let Some(stderr) = stderr {
        let label: Arc<str> = Arc::from(label);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(service = %label, stderr = %line, "mcp server stderr");
            }
        });
    }
    Ok(child)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_kept_out_of_error_messages() {
        let url = "http://127.0.0.1:1/mcp?token=s3cret";
        let transport = TransportConfig::StreamableHttp {
            url: url.into(),
            headers: Default::default(),
        };
        let error = redact_url(
            McpError::Connect(format!("error sending request for url ({url})")),
            &transport,
        );
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert!(error.to_string().contains("http://127.0.0.1:1/mcp"));
    }

    #[test]
    fn upstream_errors_map_to_codes() {
        let code = |e: McpError| ApiError::from(e).code;
        let invalid_params = McpError::JsonRpc {
            code: JsonRpcCode::INVALID_PARAMS.0,
            message: "bad".into(),
        };
        assert_eq!(code(invalid_params), ErrorCode::UpstreamRejectedArguments);
        let internal = McpError::JsonRpc {
            code: JsonRpcCode::INTERNAL_ERROR.0,
            message: "boom".into(),
        };
        assert_eq!(code(internal), ErrorCode::UpstreamProtocolError);
        assert_eq!(
            code(McpError::Timeout(Duration::from_secs(1))),
            ErrorCode::UpstreamTimeout
        );
        assert_eq!(code(McpError::Closed), ErrorCode::UpstreamUnreachable);
        let spawn = McpError::Spawn {
            command: "x".into(),
            reason: "not found".into(),
        };
        assert_eq!(code(spawn), ErrorCode::UpstreamUnreachable);
    }
}
