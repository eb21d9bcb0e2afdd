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
//! | `MCPO_APIGATEWAY_AUTHORIZER_URI` | Lambda authorizer invocation URI (`arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function ARN}/invocations`) that `/openapi.aws.json` puts on every operation; unset: API Gateway passes `Authorization` through and the executor checks it | none |
//! | `MCPO_APIGATEWAY_AUTHORIZER_CREDENTIALS` | ARN of the role API Gateway assumes to invoke the authorizer | none |
//! | `MCPO_APIGATEWAY_AUTHORIZER_TTL_SECS` | how long API Gateway caches the authorizer's answer (0 to 3600) | `300` |
//! | `MCPO_AWS_REGION` | AWS region | the standard AWS chain, else `us-east-1` |
//! | `MCPO_AWS_ENDPOINT_URL` | another endpoint for every AWS API MCPO calls (moto; MinIO for S3 alone); S3 path-style addressing | AWS |
//! | `MCPO_AWS_ACCESS_KEY_ID`, `MCPO_AWS_SECRET_ACCESS_KEY` | explicit credentials, both or neither (secret: never logged) | the standard AWS chain |
//! | `MCPO_CONFIG_STORE` | where the registry writes versioned service config snapshots: `dir:/path` or `s3://bucket/prefix` | `dir:` `$XDG_DATA_HOME` (or `~/.local/share`) `/mcpo/config-snapshots` |
//! | `MCPO_CONFIG_STORE_RETRY_MIN_MS`, `MCPO_CONFIG_STORE_RETRY_MAX_MS` | backoff between failed snapshot uploads, doubling from min to max | `500`, `60000` |
//! | `MCPO_PUBLISH_DIR` | directory the publisher writes each new document version to (`openapi.json`, `.yaml`, `.aws.json`, `versions/{n}/…`) | none |
//! | `MCPO_PUBLISH_S3` | `s3://bucket/prefix` the publisher uploads the same files to (with the `MCPO_AWS_*` settings) | none |
//! | `MCPO_PUBLISH_APIGATEWAY_REST_API_ID` | API Gateway REST API the publisher imports `/openapi.aws.json` into (overwrite) and deploys | none |
//! | `MCPO_PUBLISH_APIGATEWAY_STAGE` | stage that deployment goes to | `mcpo` |
//! | `MCPO_PUBLISH_APIGATEWAY_FAIL_ON_WARNINGS` | whether API Gateway refuses an import it has warnings about (`false`: it imports what it can) | `true` |
//! | `MCPO_PUBLISH_RETRY_MIN_MS`, `MCPO_PUBLISH_RETRY_MAX_MS` | backoff between failed pushes to one target, doubling from min to max | `500`, `60000` |
//! | `MCPO_OPENAPI_VERSIONS_KEPT` | how many versions of the platform document stay stored (the latest; at least 1) | `50` |
//! | `MCPO_OUTBOX_RETENTION_SECS` | how long a published event stays in the outbox table (NATS keeps the stream); unpublished ones always stay | `86400` |

use std::net::SocketAddr;
use std::time::Duration;

use figment::providers::{Env, Serialized};
use figment::Figment;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::auth::{AuthSettings, OidcSettings};
use crate::aws::{AwsSettings, S3Location};
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
    /// The Lambda authorizer the API Gateway flavour of the document names.
    pub apigateway_authorizer: Option<ApiGatewayAuthorizer>,
    pub aws: AwsSettings,
    pub config_store: ConfigStoreSettings,
    pub publish: PublishSettings,
    /// How long a published event row stays in the outbox.
    pub outbox_retention: Duration,
}

/// Where the publisher pushes each new version of the document; every
/// target is optional, and none is configured by default.
#[derive(Debug, Clone)]
pub struct PublishSettings {
    /// A local (or mounted) directory.
    pub dir: Option<std::path::PathBuf>,
    /// A bucket and prefix (with the `aws` settings).
    pub s3: Option<S3Location>,
    pub apigateway: Option<ApiGatewayTarget>,
    /// First wait after a failed push to a target; doubles up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// How many versions of the platform document stay stored (the latest
    /// ones): each is the whole document, megabytes for thousands of tools.
    pub versions_kept: i64,
}

impl PublishSettings {
    pub fn any_target(&self) -> bool {
        self.dir.is_some() || self.s3.is_some() || self.apigateway.is_some()
    }
}

/// An API Gateway REST API the API Gateway flavour is imported into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiGatewayTarget {
    pub rest_api_id: String,
    /// The stage each import is deployed to.
    pub stage: String,
    /// Refuse an import API Gateway has warnings about, rather than let it
    /// drop what it did not understand.
    pub fail_on_warnings: bool,
}

/// Where the registry keeps versioned snapshots of service configurations.
#[derive(Debug, Clone)]
pub struct ConfigStoreSettings {
    pub store: ConfigStore,
    /// First wait after a failed upload; doubles up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigStore {
    /// Files under a local directory.
    Dir(std::path::PathBuf),
    /// Objects in S3 (with the `aws` settings).
    S3(S3Location),
}

impl ConfigStore {
    /// `dir:/path` or `s3://bucket/prefix`.
    pub fn parse(spec: &str) -> Result<ConfigStore, String> {
        if let Some(path) = spec.strip_prefix("dir:") {
            if path.trim().is_empty() {
                return Err("`dir:` needs a path".into());
            }
            return Ok(ConfigStore::Dir(path.into()));
        }
        if spec.starts_with("s3://") {
            return S3Location::parse(spec).map(ConfigStore::S3);
        }
        Err(format!(
            "`{spec}` is neither `dir:/path` nor `s3://bucket/prefix`"
        ))
    }

    /// The user's data directory, as `mcpo up` uses for its key.
    fn local_default() -> ConfigStore {
        let data = std::env::var_os("XDG_DATA_HOME")
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".local/share"))
            })
            .unwrap_or_else(|| ".".into());
        ConfigStore::Dir(data.join("mcpo/config-snapshots"))
    }
}

impl std::fmt::Display for ConfigStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigStore::Dir(path) => write!(f, "dir:{}", path.display()),
            ConfigStore::S3(location) => location.fmt(f),
        }
    }
}

/// A Lambda `token` authorizer for the API Gateway flavour of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiGatewayAuthorizer {
    /// The authorizer's invocation URI.
    pub uri: String,
    /// The role API Gateway assumes to invoke it.
    pub credentials: Option<String>,
    /// How long API Gateway caches its answer.
    pub ttl: Duration,
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
    mcpo_apigateway_authorizer_uri: Option<String>,
    mcpo_apigateway_authorizer_credentials: Option<String>,
    mcpo_apigateway_authorizer_ttl_secs: u64,
    mcpo_aws_region: Option<String>,
    mcpo_aws_endpoint_url: Option<String>,
    mcpo_aws_access_key_id: Option<String>,
    mcpo_aws_secret_access_key: Option<String>,
    mcpo_config_store: Option<String>,
    mcpo_config_store_retry_min_ms: u64,
    mcpo_config_store_retry_max_ms: u64,
    mcpo_publish_dir: Option<String>,
    mcpo_publish_s3: Option<String>,
    mcpo_publish_apigateway_rest_api_id: Option<String>,
    mcpo_publish_apigateway_stage: String,
    mcpo_publish_apigateway_fail_on_warnings: bool,
    mcpo_publish_retry_min_ms: u64,
    mcpo_publish_retry_max_ms: u64,
    mcpo_openapi_versions_kept: i64,
    mcpo_outbox_retention_secs: u64,
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
            mcpo_apigateway_authorizer_uri: None,
            mcpo_apigateway_authorizer_credentials: None,
            mcpo_apigateway_authorizer_ttl_secs: 300,
            mcpo_aws_region: None,
            mcpo_aws_endpoint_url: None,
            mcpo_aws_access_key_id: None,
            mcpo_aws_secret_access_key: None,
            mcpo_config_store: None,
            mcpo_config_store_retry_min_ms: 500,
            mcpo_config_store_retry_max_ms: 60_000,
            mcpo_publish_dir: None,
            mcpo_publish_s3: None,
            mcpo_publish_apigateway_rest_api_id: None,
            mcpo_publish_apigateway_stage: "mcpo".into(),
            mcpo_publish_apigateway_fail_on_warnings: true,
            mcpo_publish_retry_min_ms: 500,
            mcpo_publish_retry_max_ms: 60_000,
            mcpo_openapi_versions_kept: 50,
            mcpo_outbox_retention_secs: 24 * 3600,
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
    "MCPO_APIGATEWAY_AUTHORIZER_URI",
    "MCPO_APIGATEWAY_AUTHORIZER_CREDENTIALS",
    "MCPO_APIGATEWAY_AUTHORIZER_TTL_SECS",
    "MCPO_AWS_REGION",
    "MCPO_AWS_ENDPOINT_URL",
    "MCPO_AWS_ACCESS_KEY_ID",
    "MCPO_AWS_SECRET_ACCESS_KEY",
    "MCPO_CONFIG_STORE",
    "MCPO_CONFIG_STORE_RETRY_MIN_MS",
    "MCPO_CONFIG_STORE_RETRY_MAX_MS",
    "MCPO_PUBLISH_DIR",
    "MCPO_PUBLISH_S3",
    "MCPO_PUBLISH_APIGATEWAY_REST_API_ID",
    "MCPO_PUBLISH_APIGATEWAY_STAGE",
    "MCPO_PUBLISH_APIGATEWAY_FAIL_ON_WARNINGS",
    "MCPO_PUBLISH_RETRY_MIN_MS",
    "MCPO_PUBLISH_RETRY_MAX_MS",
    "MCPO_OPENAPI_VERSIONS_KEPT",
    "MCPO_OUTBOX_RETENTION_SECS",
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
        let aws = AwsSettings::new(
            raw.mcpo_aws_region.clone(),
            raw.mcpo_aws_endpoint_url.clone(),
            raw.mcpo_aws_access_key_id.clone(),
            raw.mcpo_aws_secret_access_key.clone(),
        )?;
        let store = match raw
            .mcpo_config_store
            .as_deref()
            .filter(|s| !s.trim().is_empty())
        {
            Some(spec) => ConfigStore::parse(spec.trim())
                .map_err(|e| CoreError::Config(format!("MCPO_CONFIG_STORE: {e}")))?,
            None => ConfigStore::local_default(),
        };
        let retry_min = Duration::from_millis(raw.mcpo_config_store_retry_min_ms.max(1));
        let config_store = ConfigStoreSettings {
            store,
            retry_min,
            retry_max: Duration::from_millis(raw.mcpo_config_store_retry_max_ms).max(retry_min),
        };
        let apigateway_authorizer = apigateway_authorizer(&raw)?;
        let publish = publish_settings(&raw)?;
        Ok(Settings {
            publish,
            outbox_retention: Duration::from_secs(raw.mcpo_outbox_retention_secs),
            apigateway_authorizer,
            aws,
            config_store,
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

fn apigateway_authorizer(raw: &RawSettings) -> Result<Option<ApiGatewayAuthorizer>, CoreError> {
    fn present(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }
    let credentials = present(&raw.mcpo_apigateway_authorizer_credentials);
    let Some(uri) = present(&raw.mcpo_apigateway_authorizer_uri) else {
        if credentials.is_some() {
            return Err(CoreError::Config(
                "MCPO_APIGATEWAY_AUTHORIZER_CREDENTIALS needs MCPO_APIGATEWAY_AUTHORIZER_URI"
                    .into(),
            ));
        }
        return Ok(None);
    };
    // API Gateway refuses anything else at import, long after start.
    if !uri.starts_with("arn:") || !uri.ends_with("/invocations") {
        return Err(CoreError::Config(
            "MCPO_APIGATEWAY_AUTHORIZER_URI must be an invocation ARN: arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function ARN}/invocations".into(),
        ));
    }
    if credentials.is_some_and(|c| !c.starts_with("arn:")) {
        return Err(CoreError::Config(
            "MCPO_APIGATEWAY_AUTHORIZER_CREDENTIALS must be a role ARN".into(),
        ));
    }
    if raw.mcpo_apigateway_authorizer_ttl_secs > 3600 {
        return Err(CoreError::Config(
            "MCPO_APIGATEWAY_AUTHORIZER_TTL_SECS must be 0 to 3600".into(),
        ));
    }
    Ok(Some(ApiGatewayAuthorizer {
        uri: uri.to_owned(),
        credentials: credentials.map(str::to_owned),
        ttl: Duration::from_secs(raw.mcpo_apigateway_authorizer_ttl_secs),
    }))
}

fn publish_settings(raw: &RawSettings) -> Result<PublishSettings, CoreError> {
    fn present(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }
    let s3 = present(&raw.mcpo_publish_s3)
        .map(S3Location::parse)
        .transpose()
        .map_err(|e| CoreError::Config(format!("MCPO_PUBLISH_S3: {e}")))?;
    let apigateway = match present(&raw.mcpo_publish_apigateway_rest_api_id) {
        None => None,
        Some(id) => {
            // Both go into request paths: refuse what could change them.
            if !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(CoreError::Config(
                    "MCPO_PUBLISH_APIGATEWAY_REST_API_ID must be a REST API id (letters and digits)"
                        .into(),
                ));
            }
            let stage = match raw.mcpo_publish_apigateway_stage.trim() {
                "" => "mcpo",
                stage => stage,
            };
            let valid_stage = (1..=128).contains(&stage.len())
                && stage
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_stage {
                return Err(CoreError::Config(
                    "MCPO_PUBLISH_APIGATEWAY_STAGE must be 1 to 128 letters, digits, `-` or `_`"
                        .into(),
                ));
            }
            Some(ApiGatewayTarget {
                rest_api_id: id.to_owned(),
                stage: stage.to_owned(),
                fail_on_warnings: raw.mcpo_publish_apigateway_fail_on_warnings,
            })
        }
    };
    if raw.mcpo_openapi_versions_kept < 1 {
        return Err(CoreError::Config(format!(
            "MCPO_OPENAPI_VERSIONS_KEPT must be at least 1 (the current version), not {}",
            raw.mcpo_openapi_versions_kept
        )));
    }
    let retry_min = Duration::from_millis(raw.mcpo_publish_retry_min_ms.max(1));
    Ok(PublishSettings {
        dir: present(&raw.mcpo_publish_dir).map(Into::into),
        s3,
        apigateway,
        retry_min,
        retry_max: Duration::from_millis(raw.mcpo_publish_retry_max_ms).max(retry_min),
        versions_kept: raw.mcpo_openapi_versions_kept,
    })
}

fn valid_subject_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod publish_tests {
    use super::*;

    fn publish(adjust: impl FnOnce(&mut RawSettings)) -> Result<PublishSettings, CoreError> {
        let mut raw = RawSettings::default();
        adjust(&mut raw);
        Settings::from_raw(raw).map(|s| s.publish)
    }

    #[test]
    fn no_target_by_default_and_empty_strings_are_unset() {
        let none = publish(|_| {}).unwrap();
        assert!(!none.any_target());
        assert_eq!(none.versions_kept, 50);
        assert_eq!(
            (none.retry_min, none.retry_max),
            (Duration::from_millis(500), Duration::from_secs(60))
        );
        let empty = publish(|raw| {
            raw.mcpo_publish_dir = Some(String::new());
            raw.mcpo_publish_s3 = Some(" ".into());
            raw.mcpo_publish_apigateway_rest_api_id = Some(String::new());
        })
        .unwrap();
        assert!(!empty.any_target());
    }

    #[test]
    fn at_least_the_current_version_is_kept() {
        let error = publish(|raw| raw.mcpo_openapi_versions_kept = 0).unwrap_err();
        assert!(
            error.to_string().contains("MCPO_OPENAPI_VERSIONS_KEPT"),
            "{error}"
        );
        let one = publish(|raw| raw.mcpo_openapi_versions_kept = 1).unwrap();
        assert_eq!(one.versions_kept, 1);
    }

    #[test]
    fn targets_are_read_and_checked() {
        let all = publish(|raw| {
            raw.mcpo_publish_dir = Some("/srv/openapi".into());
            raw.mcpo_publish_s3 = Some("s3://docs-bucket/mcpo/".into());
            raw.mcpo_publish_apigateway_rest_api_id = Some("a1b2c3d4e5".into());
            raw.mcpo_publish_apigateway_stage = String::new();
            raw.mcpo_publish_retry_min_ms = 0;
            raw.mcpo_publish_retry_max_ms = 0;
        })
        .unwrap();
        assert_eq!(all.dir, Some("/srv/openapi".into()));
        assert_eq!(all.s3.unwrap().to_string(), "s3://docs-bucket/mcpo");
        assert_eq!(
            all.apigateway,
            Some(ApiGatewayTarget {
                rest_api_id: "a1b2c3d4e5".into(),
                stage: "mcpo".into(),
                fail_on_warnings: true,
            })
        );
        // Never a zero wait, and the maximum is at least the minimum.
        assert_eq!(all.retry_min, Duration::from_millis(1));
        assert_eq!(all.retry_max, all.retry_min);

        for bad in [
            |raw: &mut RawSettings| raw.mcpo_publish_s3 = Some("bucket/prefix".into()),
            |raw: &mut RawSettings| raw.mcpo_publish_apigateway_rest_api_id = Some("a/../b".into()),
            |raw: &mut RawSettings| {
                raw.mcpo_publish_apigateway_rest_api_id = Some("a1b2c3d4e5".into());
                raw.mcpo_publish_apigateway_stage = "live stage".into();
            },
        ] {
            assert!(matches!(publish(bad), Err(CoreError::Config(_))));
        }
    }
}
