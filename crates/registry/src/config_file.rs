//! The `{"mcpServers": {...}}` file that mcpo, Claude Desktop, VS Code and
//! other MCP clients use, read into our transports and written back.

use std::collections::BTreeMap;

use mcpo_core::domain::TransportConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct McpServersFile {
    #[serde(rename = "mcpServers")]
    #[schema(value_type = Object)]
    pub mcp_servers: BTreeMap<String, Value>,
}

/// Reads one entry: `command` (+ `args`, `env`) is stdio; `url` (+ `headers`,
/// optional `type` of `streamable-http`, `streamable_http` or `http`) is
/// streamable HTTP; `url` with `type` `sse` is the legacy HTTP+SSE transport.
pub fn transport_of(entry: &Value) -> Result<TransportConfig, String> {
    let object = entry.as_object().ok_or("must be an object")?;
    let kind = object.get("type").and_then(Value::as_str);
    if let Some(command) = object.get("command") {
        if kind.is_some_and(|k| k != "stdio") {
            return Err(format!(
                "has a `command` but type `{}`",
                kind.unwrap_or_default()
            ));
        }
        let stdio = serde_json::json!({
            "type": "stdio",
            "command": command,
            "args": object.get("args").cloned().unwrap_or(Value::Array(vec![])),
            "env": object.get("env").cloned().unwrap_or(Value::Object(Default::default())),
        });
        return serde_json::from_value(stdio).map_err(|e| e.to_string());
    }
    if let Some(url) = object.get("url") {
        return match kind {
            None | Some("streamable-http" | "streamable_http" | "http" | "streamableHttp") => {
                let http = serde_json::json!({
                    "type": "streamable_http",
                    "url": url,
                    "headers": object.get("headers").cloned().unwrap_or(Value::Object(Default::default())),
                });
                serde_json::from_value(http).map_err(|e| e.to_string())
            }
            Some("sse") => {
                let sse = serde_json::json!({
                    "type": "sse",
                    "url": url,
                    "headers": object.get("headers").cloned().unwrap_or(Value::Object(Default::default())),
                });
                serde_json::from_value(sse).map_err(|e| e.to_string())
            }
            Some(other) => Err(format!("has unknown type `{other}`")),
        };
    }
    Err("needs a `command` (stdio) or a `url` (streamable HTTP, or SSE with `type` `sse`)".into())
}

/// Writes one entry with the transport's values as given: callers pass it
/// redacted, or opened for an admin's export with secrets.
pub fn entry_of(transport: &TransportConfig) -> Value {
    let mut entry = serde_json::Map::new();
    match transport {
        TransportConfig::Stdio { command, args, env } => {
            entry.insert("command".into(), command.clone().into());
            if !args.is_empty() {
                entry.insert("args".into(), serde_json::json!(args));
            }
            if !env.is_empty() {
                entry.insert("env".into(), serde_json::json!(env));
            }
        }
        TransportConfig::StreamableHttp { url, headers } => {
            entry.insert("type".into(), "streamable-http".into());
            entry.insert("url".into(), url.clone().into());
            if !headers.is_empty() {
                entry.insert("headers".into(), serde_json::json!(headers));
            }
        }
        TransportConfig::Sse { url, headers } => {
            entry.insert("type".into(), "sse".into());
            entry.insert("url".into(), url.clone().into());
            if !headers.is_empty() {
                entry.insert("headers".into(), serde_json::json!(headers));
            }
        }
    }
    Value::Object(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpo_core::secrets::{redact_transport, REDACTED};
    use serde_json::json;

    #[test]
    fn reads_the_forms_clients_write() {
        let stdio =
            transport_of(&json!({ "command": "npx", "args": ["-y", "x"], "env": { "K": "v" } }))
                .unwrap();
        assert_eq!(stdio.kind(), "stdio");
        let http = transport_of(
            &json!({ "type": "http", "url": "https://h/mcp", "headers": { "a": "b" } }),
        )
        .unwrap();
        assert_eq!(http.kind(), "streamable_http");
        assert!(transport_of(&json!({ "url": "https://h/mcp" })).is_ok());
        let sse = transport_of(
            &json!({ "type": "sse", "url": "https://h/sse", "headers": { "x-key": "k" } }),
        )
        .unwrap();
        assert_eq!(sse.kind(), "sse");
        assert_eq!(
            entry_of(&sse),
            json!({ "type": "sse", "url": "https://h/sse", "headers": { "x-key": "k" } })
        );
        assert!(transport_of(&json!({ "type": "sse", "command": "npx" })).is_err());
        assert!(transport_of(&json!({ "type": "sse", "url": 3 })).is_err());
        assert!(transport_of(&json!({ "type": "websocket", "url": "wss://h" })).is_err());
        assert!(transport_of(&json!({ "args": [] })).is_err());
        assert!(transport_of(&json!({ "command": 3 })).is_err());
        assert!(transport_of(&json!("npx")).is_err());
    }

    #[test]
    fn writes_entries_with_secrets_redacted() {
        let stdio =
            transport_of(&json!({ "command": "srv", "env": { "TOKEN": "s3cret" } })).unwrap();
        assert_eq!(
            entry_of(&redact_transport(&stdio)),
            json!({ "command": "srv", "env": { "TOKEN": REDACTED } })
        );
        let http = transport_of(
            &json!({ "url": "https://h/mcp", "headers": { "authorization": "Bearer s3cret" } }),
        )
        .unwrap();
        let written = entry_of(&redact_transport(&http));
        assert_eq!(written["headers"]["authorization"], REDACTED);
        assert!(!written.to_string().contains("s3cret"));
        assert_eq!(transport_of(&written).unwrap().kind(), "streamable_http");

        let sse = transport_of(
            &json!({ "type": "sse", "url": "https://h/sse", "headers": { "authorization": "Bearer s3cret" } }),
        )
        .unwrap();
        let written = entry_of(&redact_transport(&sse));
        assert_eq!(written["headers"]["authorization"], REDACTED);
        assert!(!written.to_string().contains("s3cret"));
        assert_eq!(transport_of(&written).unwrap().kind(), "sse");
    }
}
