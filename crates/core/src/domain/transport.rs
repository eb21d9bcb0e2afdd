use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Limits on what a transport may carry: generous for real servers, small
/// enough that one registration cannot bloat rows, logs and process tables.
pub const MAX_COMMAND_LEN: usize = 4096;
pub const MAX_ARGS: usize = 128;
pub const MAX_ENTRIES: usize = 64;
pub const MAX_VALUE_LEN: usize = 8192;
pub const MAX_URL_LEN: usize = 2048;

/// How MCPO reaches an MCP server. Stored as JSON in `mcp_services.transport`
/// and accepted as-is by the registry API.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// A server speaking the legacy HTTP+SSE transport (MCP 2024-11-05):
    /// `url` is the SSE stream's, the server names where to post.
    Sse {
        url: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
}

/// Env and header values may be secrets: `{:?}` never shows them.
impl std::fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |map: &BTreeMap<String, String>| map.keys().cloned().collect::<Vec<_>>();
        match self {
            TransportConfig::Stdio { command, args, env } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &names(env))
                .finish(),
            TransportConfig::StreamableHttp { url, headers } => f
                .debug_struct("StreamableHttp")
                .field("url", url)
                .field("headers", &names(headers))
                .finish(),
            TransportConfig::Sse { url, headers } => f
                .debug_struct("Sse")
                .field("url", url)
                .field("headers", &names(headers))
                .finish(),
        }
    }
}

impl TransportConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            TransportConfig::Stdio { .. } => "stdio",
            TransportConfig::StreamableHttp { .. } => "streamable_http",
            TransportConfig::Sse { .. } => "sse",
        }
    }

    /// Checks what serde cannot: non-empty command, a parseable http(s) URL,
    /// header names and values HTTP accepts. Returns `(field, problem)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        match self {
            TransportConfig::Stdio { command, args, env } => {
                if command.trim().is_empty() {
                    return Err(("transport.command".into(), "must not be empty".into()));
                }
                if command.len() > MAX_COMMAND_LEN || command.contains('\0') {
                    return Err((
                        "transport.command".into(),
                        format!("must be at most {MAX_COMMAND_LEN} bytes, without NUL"),
                    ));
                }
                if args.len() > MAX_ARGS {
                    return Err((
                        "transport.args".into(),
                        format!("may hold at most {MAX_ARGS} arguments"),
                    ));
                }
                if let Some(i) = args
                    .iter()
                    .position(|a| a.len() > MAX_VALUE_LEN || a.contains('\0'))
                {
                    return Err((
                        format!("transport.args[{i}]"),
                        format!("must be at most {MAX_VALUE_LEN} bytes, without NUL"),
                    ));
                }
                check_entries("transport.env", env)?;
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
            TransportConfig::StreamableHttp { url, headers }
            | TransportConfig::Sse { url, headers } => validate_http(url, headers),
        }
    }
}

/// The URL and header rules every HTTP transport shares.
fn validate_http(url: &str, headers: &BTreeMap<String, String>) -> Result<(), (String, String)> {
    if url.len() > MAX_URL_LEN {
        return Err((
            "transport.url".into(),
            format!("must be at most {MAX_URL_LEN} bytes"),
        ));
    }
    check_entries("transport.headers", headers)?;
    let parsed = url::Url::parse(url).map_err(|e| {
        (
            "transport.url".to_owned(),
            format!("is not a valid URL: {e}"),
        )
    })?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err((
            "transport.url".into(),
            "must not carry credentials; send them in `headers`".into(),
        ));
    }
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

fn check_entries(field: &str, entries: &BTreeMap<String, String>) -> Result<(), (String, String)> {
    if entries.len() > MAX_ENTRIES {
        return Err((
            field.to_owned(),
            format!("may hold at most {MAX_ENTRIES} entries"),
        ));
    }
    match entries
        .iter()
        // Postgres cannot store NUL in text or jsonb.
        .find(|(k, v)| {
            k.len() > MAX_VALUE_LEN
                || v.len() > MAX_VALUE_LEN
                || k.contains('\0')
                || v.contains('\0')
        }) {
        Some((key, _)) => Err((
            format!("{field}.{key}"),
            format!("must be at most {MAX_VALUE_LEN} bytes, without NUL"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdio(command: &str, args: Vec<String>, env: BTreeMap<String, String>) -> TransportConfig {
        TransportConfig::Stdio {
            command: command.into(),
            args,
            env,
        }
    }

    fn field(t: &TransportConfig) -> String {
        t.validate().unwrap_err().0
    }

    #[test]
    fn limits_name_the_field() {
        assert!(stdio("npx", vec!["-y".into()], BTreeMap::new())
            .validate()
            .is_ok());
        assert_eq!(
            field(&stdio("", vec![], BTreeMap::new())),
            "transport.command"
        );
        assert_eq!(
            field(&stdio("a\0b", vec![], BTreeMap::new())),
            "transport.command"
        );
        assert_eq!(
            field(&stdio("x", vec!["a".into(); MAX_ARGS + 1], BTreeMap::new())),
            "transport.args"
        );
        assert_eq!(
            field(&stdio(
                "x",
                vec!["ok".into(), "y".repeat(MAX_VALUE_LEN + 1)],
                BTreeMap::new()
            )),
            "transport.args[1]"
        );
        let many: BTreeMap<_, _> = (0..=MAX_ENTRIES)
            .map(|i| (format!("K{i}"), "v".to_owned()))
            .collect();
        assert_eq!(field(&stdio("x", vec![], many)), "transport.env");
        let nul_value = BTreeMap::from([("K".to_owned(), "a\0b".to_owned())]);
        assert_eq!(field(&stdio("x", vec![], nul_value)), "transport.env.K");
        let bad_key = BTreeMap::from([("A=B".to_owned(), "v".to_owned())]);
        assert_eq!(field(&stdio("x", vec![], bad_key)), "transport.env.A=B");

        let http = |url: &str, headers: BTreeMap<String, String>| TransportConfig::StreamableHttp {
            url: url.into(),
            headers,
        };
        assert!(http("https://mcp.example.com/mcp", BTreeMap::new())
            .validate()
            .is_ok());
        assert_eq!(
            field(&http("ftp://x/mcp", BTreeMap::new())),
            "transport.url"
        );
        assert_eq!(
            field(&http(
                &format!("https://x/{}", "a".repeat(MAX_URL_LEN)),
                BTreeMap::new()
            )),
            "transport.url"
        );
        let bad_header = BTreeMap::from([("bad header".to_owned(), "v".to_owned())]);
        assert_eq!(
            field(&http("https://x/mcp", bad_header)),
            "transport.headers.bad header"
        );
        let long_value = BTreeMap::from([("x-key".to_owned(), "v".repeat(MAX_VALUE_LEN + 1))]);
        assert_eq!(
            field(&http("https://x/mcp", long_value)),
            "transport.headers.x-key"
        );
    }

    #[test]
    fn sse_follows_the_http_rules() {
        let sse = |url: &str, headers: BTreeMap<String, String>| TransportConfig::Sse {
            url: url.into(),
            headers,
        };
        assert!(sse("http://127.0.0.1:3001/sse", BTreeMap::new())
            .validate()
            .is_ok());
        assert_eq!(
            field(&sse("file:///etc/passwd", BTreeMap::new())),
            "transport.url"
        );
        assert_eq!(
            field(&sse("https://me:pw@x/sse", BTreeMap::new())),
            "transport.url"
        );
        let bad_value = BTreeMap::from([("x-key".to_owned(), "a\nb".to_owned())]);
        assert_eq!(
            field(&sse("https://x/sse", bad_value)),
            "transport.headers.x-key"
        );

        let parsed: TransportConfig = serde_json::from_value(serde_json::json!({
            "type": "sse", "url": "https://x/sse", "headers": { "authorization": "Bearer s3cret" }
        }))
        .unwrap();
        assert_eq!(parsed.kind(), "sse");
        let shown = format!("{parsed:?}");
        assert!(
            shown.contains("authorization") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(serde_json::from_value::<TransportConfig>(
            serde_json::json!({ "type": "sse", "url": "https://x/sse", "extra": 1 })
        )
        .is_err());
    }
}
