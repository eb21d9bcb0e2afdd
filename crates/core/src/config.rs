//! Settings of every MCPO process, read from the environment with defaults that
//! work on a developer machine (local Postgres and NATS, loopback ports).
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DATABASE_URL` | Postgres URL (secret: never logged) | `postgres://postgres@127.0.0.1:5432/mcpo` |
//! | `MCPO_DATABASE_POOL_SIZE` | connections per process | `16` |
//! | `NATS_URL` | NATS server | `nats://127.0.0.1:4222` |
//! | `MCPO_NATS_PREFIX` | prefix of every subject MCPO publishes | `mcpo` |
//! | `MCPO_NATS_STREAM` | JetStream stream holding MCPO's events | `MCPO` |
//! | `MCPO_REGISTRY_ADDR` | registry listen address | `127.0.0.1:8080` |
//! | `MCPO_EXECUTOR_ADDR` | executor listen address | `127.0.0.1:8081` |
//! | `MCPO_PUBLISHER_ADDR` | publisher listen address | `127.0.0.1:8082` |
//! | `MCPO_EXECUTOR_PUBLIC_URL` | URL clients use to reach the executor | `http://127.0.0.1:8081` |
//! | `MCPO_MCP_CONNECT_TIMEOUT_SECS` | connect + initialize + list limit | `30` |
//! | `MCPO_TOOL_CALL_TIMEOUT_SECS` | default limit of one tool call | `60` |
//! | `MCPO_LOG_FORMAT` | `json` or `pretty` | `json` |
//! | `MCPO_HTTP_WORKERS` | HTTP worker threads per service | number of cores |
//! | `MCPO_STATUS_INTERVAL_MS` | how often the registry checks every service (`0`: never) | `30000` |
//! | `MCPO_AUTH` | `enabled`, or `disabled` for local use only (every caller may do everything) | `enabled` |
//! | `MCPO_AUTH_ISSUER` | OIDC issuer whose access tokens are accepted; unset: API keys only | none |
//! | `MCPO_AUTH_AUDIENCE` | the `aud` tokens must carry (required with an issuer) | none |
//! | `MCPO_AUTH_PERMISSIONS_CLAIM` | the one claim holding permissions (array or space-separated): `permissions` (Auth0 RBAC) or `scope` | `permissions` |
//! | `MCPO_AUTH_LEEWAY_SECS` | clock skew allowed on `exp`/`nbf` | `30` |
//! | `MCPO_AUTH_JWKS_TTL_SECS` | how long the issuer's keys are used before refetching | `3600` |
//! | `MCPO_AUTH_JWKS_MIN_REFRESH_SECS` | least time between refetches caused by unknown `kid`s | `30` |
//! | `MCPO_STDIO_ALLOWED_COMMANDS` | stdio commands that may be registered, `;`-separated, each `command [leading args…]`; `*` allows any (dev only) | none |
//! | `MCPO_EGRESS_ALLOW` | non-public destinations URL services may use: CIDRs, IPs or host names, comma-separated | none |
//! | `MCPO_SECRET_KEYS` | AES-256 keys sealing transport secrets, `id:base64,…`, first one seals (secret: never logged) | none: secrets cannot be stored |
//! | `MCPO_MAX_CALLS` | tool calls running at once in one executor; more answer 503 `overloaded` | `1024` |
//! | `MCPO_SERVICE_MAX_CALLS` | tool calls running at once against one service | `64` |
//! | `MCPO_SERVICE_MAX_QUEUED` | calls waiting for a busy service; more answer 503 `overloaded` | `256` |
//! | `MCPO_CALLER_MAX_CALLS` | calls in flight per caller (token subject or API key; client address in dev mode); more answer 429 | `256` |
//! | `MCPO_SHUTDOWN_TIMEOUT_SECS` | on SIGTERM, how long requests in flight may finish before they are dropped | `30` |
//! | `MCPO_CALLER_SESSIONS_MAX` | callers with a session of their own, per `per_caller` service; more answer 503 | `64` |
//! | `MCPO_CALLER_SESSION_IDLE_SECS` | a `per_caller` session closes after this long unused | `300` |
//! | `MCPO_API_KEY_CACHE_SECS` | how long a checked API key is trusted (revocation delay elsewhere) | `10` |

use std::net::SocketAddr;
use std::time::Duration;

use figment::providers::{Env, Serialized};
use figment::Figment;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::auth::{AuthSettings, OidcSettings};
use crate::egress::{EgressPolicy, StdioPolicy};
use crate::error::CoreError;
use crate::secrets::SecretKeyring;

#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub registry_addr: SocketAddr,
    pub executor_addr: SocketAddr,
    pub publisher_addr: SocketAddr,
    pub executor_public_url: String,
    pub mcp_connect_timeout: Duration,
    pub tool_call_timeout: Duration,
    pub log_format: LogFormat,
    pub http_workers: usize,
    /// `None`: the status monitor does not run.
    pub status_interval: Option<Duration>,
    pub auth: AuthSettings,
    /// What URL transports may connect to beyond public addresses.
    pub egress: EgressPolicy,
    /// Which stdio commands may be registered and run.
    pub stdio: StdioPolicy,
    /// `None`: transports with env or header values cannot be stored.
    pub secret_keys: Option<SecretKeyring>,
    pub call_limits: CallLimits,
    /// On SIGTERM, how long requests in flight may still take.
    pub shutdown_timeout: Duration,
    pub caller_sessions: CallerSessionLimits,
}

/// Sessions of `per_caller` services.
#[derive(Debug, Clone, Copy)]
pub struct CallerSessionLimits {
    /// Callers with a session of their own, per service.
    pub max_per_service: usize,
    /// A caller's session closes after this long without a call.
    pub idle: Duration,
}

/// The executor's bounds on tool calls (see `crates/executor/src/admission.rs`).
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    /// Calls running at once in one executor.
    pub overall: usize,
    /// Calls running at once against one service.
    pub per_service: usize,
    /// Calls waiting for one service's capacity.
    pub per_service_queue: usize,
    /// Calls running or waiting at once for one caller.
    pub per_caller: usize,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub pool_size: usize,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct NatsSettings {
    pub url: String,
    pub subject_prefix: String,
    pub stream: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// The flat shape the environment is read into.
#[derive(Debug, Serialize, Deserialize)]
struct RawSettings {
    database_url: String,
    mcpo_database_pool_size: usize,
    nats_url: String,
    mcpo_nats_prefix: String,
    mcpo_nats_stream: String,
    mcpo_registry_addr: SocketAddr,
    mcpo_executor_addr: SocketAddr,
    mcpo_publisher_addr: SocketAddr,
    mcpo_executor_public_url: String,
    mcpo_mcp_connect_timeout_secs: u64,
    mcpo_tool_call_timeout_secs: u64,
    mcpo_log_format: LogFormat,
    mcpo_http_workers: Option<usize>,
    mcpo_status_interval_ms: u64,
    mcpo_auth: String,
    mcpo_auth_issuer: Option<String>,
    mcpo_auth_audience: Option<String>,
    mcpo_auth_permissions_claim: String,
    mcpo_auth_leeway_secs: u64,
    mcpo_auth_jwks_ttl_secs: u64,
    mcpo_auth_jwks_min_refresh_secs: u64,
    mcpo_api_key_cache_secs: u64,
    mcpo_stdio_allowed_commands: String,
    mcpo_egress_allow: String,
    mcpo_secret_keys: Option<String>,
    mcpo_max_calls: usize,
    mcpo_service_max_calls: usize,
    mcpo_service_max_queued: usize,
    mcpo_caller_max_calls: usize,
    mcpo_shutdown_timeout_secs: u64,
    mcpo_caller_sessions_max: usize,
    mcpo_caller_session_idle_secs: u64,
}

impl Default for RawSettings {
    fn default() -> Self {
        RawSettings {
            database_url: "postgres://postgres@127.0.0.1:5432/mcpo".into(),
            mcpo_database_pool_size: 16,
            nats_url: "nats://127.0.0.1:4222".into(),
            mcpo_nats_prefix: "mcpo".into(),
            mcpo_nats_stream: "MCPO".into(),
            mcpo_registry_addr: ([127, 0, 0, 1], 8080).into(),
            mcpo_executor_addr: ([127, 0, 0, 1], 8081).into(),
            mcpo_publisher_addr: ([127, 0, 0, 1], 8082).into(),
            mcpo_executor_public_url: "http://127.0.0.1:8081".into(),
            mcpo_mcp_connect_timeout_secs: 30,
            mcpo_tool_call_timeout_secs: 60,
            mcpo_log_format: LogFormat::Json,
            mcpo_http_workers: None,
            mcpo_status_interval_ms: 30_000,
            mcpo_auth: "enabled".into(),
            mcpo_auth_issuer: None,
            mcpo_auth_audience: None,
            mcpo_auth_permissions_claim: "permissions".into(),
            mcpo_auth_leeway_secs: 30,
            mcpo_auth_jwks_ttl_secs: 3600,
            mcpo_auth_jwks_min_refresh_secs: 30,
            mcpo_api_key_cache_secs: 10,
            mcpo_stdio_allowed_commands: String::new(),
            mcpo_egress_allow: String::new(),
            mcpo_secret_keys: None,
            mcpo_max_calls: 1024,
            mcpo_service_max_calls: 64,
            mcpo_service_max_queued: 256,
            mcpo_caller_max_calls: 256,
            mcpo_shutdown_timeout_secs: 30,
            mcpo_caller_sessions_max: 64,
            mcpo_caller_session_idle_secs: 300,
        }
    }
}

const VARIABLES: &[&str] = &[
    "DATABASE_URL",
    "MCPO_DATABASE_POOL_SIZE",
    "NATS_URL",
    "MCPO_NATS_PREFIX",
    "MCPO_NATS_STREAM",
    "MCPO_REGISTRY_ADDR",
    "MCPO_EXECUTOR_ADDR",
    "MCPO_PUBLISHER_ADDR",
    "MCPO_EXECUTOR_PUBLIC_URL",
    "MCPO_MCP_CONNECT_TIMEOUT_SECS",
    "MCPO_TOOL_CALL_TIMEOUT_SECS",
    "MCPO_LOG_FORMAT",
    "MCPO_HTTP_WORKERS",
    "MCPO_STATUS_INTERVAL_MS",
    "MCPO_AUTH",
    "MCPO_AUTH_ISSUER",
    "MCPO_AUTH_AUDIENCE",
    "MCPO_AUTH_PERMISSIONS_CLAIM",
    "MCPO_AUTH_LEEWAY_SECS",
    "MCPO_AUTH_JWKS_TTL_SECS",
    "MCPO_AUTH_JWKS_MIN_REFRESH_SECS",
    "MCPO_API_KEY_CACHE_SECS",
    "MCPO_STDIO_ALLOWED_COMMANDS",
    "MCPO_EGRESS_ALLOW",
    "MCPO_SECRET_KEYS",
    "MCPO_MAX_CALLS",
    "MCPO_SERVICE_MAX_CALLS",
    "MCPO_SERVICE_MAX_QUEUED",
    "MCPO_CALLER_MAX_CALLS",
    "MCPO_SHUTDOWN_TIMEOUT_SECS",
    "MCPO_CALLER_SESSIONS_MAX",
    "MCPO_CALLER_SESSION_IDLE_SECS",
];

impl Settings {
    /// Reads the environment over the defaults.
    pub fn from_env() -> Result<Settings, CoreError> {
        let raw: RawSettings = Figment::from(Serialized::defaults(RawSettings::default()))
            .merge(
                Env::raw()
                    .only(VARIABLES)
                    .map(|key| key.as_str().to_ascii_lowercase().into()),
            )
            .extract()
            .map_err(|e| CoreError::Config(e.to_string()))?;
        Settings::from_raw(raw)
    }

    /// Settings with every default, for tests that then change what they need.
    pub fn local_defaults() -> Settings {
        Settings::from_raw(RawSettings::default()).expect("defaults are valid")
    }

    fn from_raw(raw: RawSettings) -> Result<Settings, CoreError> {
        if !valid_subject_token(&raw.mcpo_nats_prefix) {
            return Err(CoreError::Config(
                "MCPO_NATS_PREFIX may contain only letters, digits, '-' and '_'".into(),
            ));
        }
        url::Url::parse(&raw.mcpo_executor_public_url).map_err(|e| {
            CoreError::Config(format!("MCPO_EXECUTOR_PUBLIC_URL is not a URL: {e}"))
        })?;
        let auth = auth_settings(&raw)?;
        let egress = EgressPolicy::parse(&raw.mcpo_egress_allow)
            .map_err(|e| CoreError::Config(format!("MCPO_EGRESS_ALLOW: {e}")))?;
        let stdio = StdioPolicy::parse(&raw.mcpo_stdio_allowed_commands)
            .map_err(|e| CoreError::Config(format!("MCPO_STDIO_ALLOWED_COMMANDS: {e}")))?;
        let secret_keys = raw
            .mcpo_secret_keys
            .as_deref()
            .filter(|spec| !spec.trim().is_empty())
            .map(SecretKeyring::parse)
            .transpose()
            .map_err(|e| CoreError::Config(format!("MCPO_SECRET_KEYS: {e}")))?;
        Ok(Settings {
            auth,
            egress,
            stdio,
            secret_keys,
            shutdown_timeout: Duration::from_secs(raw.mcpo_shutdown_timeout_secs),
            caller_sessions: CallerSessionLimits {
                max_per_service: raw.mcpo_caller_sessions_max.max(1),
                idle: Duration::from_secs(raw.mcpo_caller_session_idle_secs.max(1)),
            },
            call_limits: CallLimits {
                overall: raw.mcpo_max_calls.max(1),
                per_service: raw.mcpo_service_max_calls.max(1),
                per_service_queue: raw.mcpo_service_max_queued,
                per_caller: raw.mcpo_caller_max_calls.max(1),
            },
            database: DatabaseSettings {
                url: SecretString::from(raw.database_url),
                pool_size: raw.mcpo_database_pool_size.max(1),
                acquire_timeout: Duration::from_secs(5),
                statement_timeout: crate::db::default_statement_timeout(),
            },
            nats: NatsSettings {
                url: raw.nats_url,
                subject_prefix: raw.mcpo_nats_prefix,
                stream: raw.mcpo_nats_stream,
            },
            registry_addr: raw.mcpo_registry_addr,
            executor_addr: raw.mcpo_executor_addr,
            publisher_addr: raw.mcpo_publisher_addr,
            executor_public_url: raw
                .mcpo_executor_public_url
                .trim_end_matches('/')
                .to_owned(),
            mcp_connect_timeout: Duration::from_secs(raw.mcpo_mcp_connect_timeout_secs.max(1)),
            tool_call_timeout: Duration::from_secs(raw.mcpo_tool_call_timeout_secs.max(1)),
            log_format: raw.mcpo_log_format,
            http_workers: raw
                .mcpo_http_workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
                .max(1),
            status_interval: (raw.mcpo_status_interval_ms > 0)
                .then(|| Duration::from_millis(raw.mcpo_status_interval_ms)),
        })
    }
}

fn auth_settings(raw: &RawSettings) -> Result<AuthSettings, CoreError> {
    match raw.mcpo_auth.as_str() {
        "disabled" => return Ok(AuthSettings::Disabled),
        "enabled" => {}
        other => {
            return Err(CoreError::Config(format!(
                "MCPO_AUTH must be `enabled` or `disabled`, not `{other}`"
            )))
        }
    }
    // Compose files pass unset variables as empty strings.
    let present = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    let oidc = match (
        present(&raw.mcpo_auth_issuer),
        present(&raw.mcpo_auth_audience),
    ) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(CoreError::Config(
                "MCPO_AUTH_AUDIENCE is required with MCPO_AUTH_ISSUER".into(),
            ))
        }
        (Some(issuer), Some(audience)) => {
            let parsed = url::Url::parse(&issuer)
                .map_err(|e| CoreError::Config(format!("MCPO_AUTH_ISSUER is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "https" | "http") {
                return Err(CoreError::Config(
                    "MCPO_AUTH_ISSUER must be an http(s) URL".into(),
                ));
            }
            Some(OidcSettings {
                issuer,
                audience,
                permissions_claim: raw.mcpo_auth_permissions_claim.clone(),
                leeway: Duration::from_secs(raw.mcpo_auth_leeway_secs),
                jwks_ttl: Duration::from_secs(raw.mcpo_auth_jwks_ttl_secs.max(1)),
                min_refresh: Duration::from_secs(raw.mcpo_auth_jwks_min_refresh_secs),
            })
        }
    };
    Ok(AuthSettings::Enforced {
        oidc,
        api_key_cache: Duration::from_secs(raw.mcpo_api_key_cache_secs),
    })
}

fn valid_subject_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
