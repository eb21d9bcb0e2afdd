use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How MCPO reaches an MCP server. Stored as JSON in `mcp_services.transport`
/// and accepted as-is by the registry API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransportConfig {
    /// A local process speaking MCP over stdin/stdout.
    Stdio {
        command: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
    },
    /// A server speaking the streamable HTTP transport (MCP 2025-03-26 and later).
    StreamableHttp {
        url: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
}

impl TransportConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            TransportConfig::Stdio { .. } => "stdio",
            TransportConfig::StreamableHttp { .. } => "streamable_http",
        }
    }

    /// Checks what serde cannot: non-empty command, a parseable http(s) URL,
    /// header names and values HTTP accepts. Returns `(field, problem)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        match self {
            TransportConfig::Stdio { command, env, .. } => {
                if command.trim().is_empty() {
                    return Err(("transport.command".into(), "must not be empty".into()));
                }
                if let Some(key) = env
                    .keys()
                    .find(|k| k.is_empty() || k.contains('=') || k.contains('\0'))
                {
                    return Err((
                        format!("transport.env.{key}"),
                        "is not a valid environment variable name".into(),
                    ));
                }
                Ok(())
            }
            TransportConfig::StreamableHttp { url, headers } => {
                let parsed = url::Url::parse(url).map_err(|e| {
                    (
                        "transport.url".to_owned(),
                        format!("is not a valid URL: {e}"),
                    )
                })?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(("transport.url".into(), "must use http or https".into()));
                }
                for (name, value) in headers {
                    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        return Err((
                            format!("transport.headers.{name}"),
                            "is not a valid header name".into(),
                        ));
                    }
                    if reqwest::header::HeaderValue::from_str(value).is_err() {
                        return Err((
                            format!("transport.headers.{name}"),
                            "is not a valid header value".into(),
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}
