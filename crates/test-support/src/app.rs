//! The three services running in-process on port 0 against a test database
//! and test NATS stream of their own.

use std::time::Duration;

use actix_web::dev::ServerHandle;
use mcpo_core::auth::{AuthSettings, OidcSettings};
use mcpo_core::config::Settings;
use mcpo_core::egress::{EgressPolicy, StdioPolicy};
use mcpo_core::events::{Event, EventBus};
use mcpo_core::secrets::SecretKeyring;
use mcpo_core::server::Dependencies;
use serde_json::Value;

use crate::database::TestDatabase;
use crate::eventually::eventually;
use crate::oidc::TestIssuer;

pub struct TestApp {
    pub registry_url: String,
    pub executor_url: String,
    pub publisher_url: String,
    /// Sends an admin token (every permission) with each request.
    pub http: reqwest::Client,
    /// Signs the tokens the services accept.
    pub issuer: TestIssuer,
    pub settings: Settings,
    pub deps: Dependencies,
    handles: Vec<ServerHandle>,
    _database: TestDatabase,
}

pub fn nats_url() -> String {
    std::env::var("MCPO_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// Settings pointing at a fresh database and a NATS stream and prefix of our own.
pub fn isolated_settings(database: &TestDatabase) -> Settings {
    let mut settings = Settings::local_defaults();
    let id = uuid::Uuid::new_v4().simple().to_string();
    settings.database.url = database.url.clone();
    // The three services share this pool here, and each lock holder (outbox
    // relay, status monitor, snapshot uploader) keeps one connection.
    settings.database.pool_size = 8;
    settings.nats.url =
        std::env::var("MCPO_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    settings.nats.subject_prefix = format!("t{id}");
    settings.nats.stream = format!("T{id}");
    settings.registry_addr = ([127, 0, 0, 1], 0).into();
    settings.executor_addr = ([127, 0, 0, 1], 0).into();
    settings.publisher_addr = ([127, 0, 0, 1], 0).into();
    settings.http_workers = 1;
    settings.mcp_connect_timeout = Duration::from_secs(20);
    settings.tool_call_timeout = Duration::from_secs(20);
    // Tests run the fixture and server-everything, and reach HTTP fixtures on
    // loopback; the security tests narrow both.
    settings.stdio = StdioPolicy::parse("*").unwrap();
    settings.egress = EgressPolicy::parse("127.0.0.0/8").unwrap();
    settings.secret_keys =
        Some(SecretKeyring::parse(&format!("test:{}", SecretKeyring::generate_key())).unwrap());
    // Config snapshots go to a directory of this test's, not the user's data directory.
    settings.config_store.store = mcpo_core::config::ConfigStore::Dir(
        std::env::temp_dir().join(format!("mcpo-config-snapshots-{id}")),
    );
    settings
}

/// The registry's service collection.
pub const SERVICES: &str = "/api/v1/mcpo/services";

/// The audience of every test token.
pub const AUDIENCE: &str = "mcpo-test";

/// Every permission MCPO knows.
pub const ALL_PERMISSIONS: &[&str] = &[
    "registry:read",
    "registry:write",
    "registry:admin",
    "tools:invoke",
    "openapi:read",
];

/// Auth settings trusting `issuer`'s tokens for [`AUDIENCE`].
pub fn oidc_settings(issuer: &TestIssuer) -> AuthSettings {
    AuthSettings::Enforced {
        oidc: Some(OidcSettings {
            issuer: issuer.issuer(),
            audience: AUDIENCE.into(),
            permissions_claim: "permissions".into(),
            leeway: Duration::from_secs(5),
            jwks_ttl: Duration::from_secs(3600),
            // Rotation tests need the refetch at once; the rate-limit test sets its own.
            min_refresh: Duration::ZERO,
        }),
        api_key_cache: Duration::from_secs(10),
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    /// Starts all services; `adjust` may change settings before they start.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
        mcpo_core::telemetry::init(mcpo_core::config::LogFormat::Json);
        let database = TestDatabase::create().await;
        let issuer = TestIssuer::start().await;
        let mut settings = isolated_settings(&database);
        settings.auth = oidc_settings(&issuer);
        adjust(&mut settings);
        let deps = Dependencies::connect(&settings, "mcpo-test")
            .await
            .expect("tests need NATS with JetStream");

        // The executor goes first: the others need its URL.
        let executor = mcpo_executor::build(&settings, deps.clone())
            .await
            .expect("executor starts");
        settings.executor_public_url = format!("http://{}", executor.addr());
        let registry = mcpo_registry::build(&settings, deps.clone()).expect("registry starts");
        let publisher = mcpo_publisher::build(&settings, deps.clone())
            .await
            .expect("publisher starts");

        let app = TestApp {
            registry_url: format!("http://{}", registry.addr()),
            executor_url: format!("http://{}", executor.addr()),
            publisher_url: format!("http://{}", publisher.addr()),
            http: authorized_client(
                &issuer.token(long_lived(issuer.claims(AUDIENCE, ALL_PERMISSIONS))),
            ),
            issuer,
            handles: vec![registry.handle(), executor.handle(), publisher.handle()],
            settings,
            deps,
            _database: database,
        };
        for server in [registry, executor, publisher] {
            tokio::spawn(server.run_until_stopped());
        }
        app
    }

    /// A token for [`AUDIENCE`] with these permissions.
    pub fn token(&self, permissions: &[&str]) -> String {
        self.issuer
            .token(long_lived(self.issuer.claims(AUDIENCE, permissions)))
    }

    /// A client sending a token with these permissions.
    pub fn client_with(&self, permissions: &[&str]) -> reqwest::Client {
        authorized_client(&self.token(permissions))
    }

    /// The app's stream and prefix on the NATS server itself, whatever URL
    /// the services were given (a test may put a gate in between).
    pub fn direct_nats(&self) -> mcpo_core::config::NatsSettings {
        mcpo_core::config::NatsSettings {
            url: nats_url(),
            ..self.settings.nats.clone()
        }
    }

    pub async fn register(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{SERVICES}", self.registry_url))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Registers every server of an `{"mcpServers": {...}}` file.
    pub async fn import(&self, file: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{SERVICES}:import", self.registry_url))
            .json(file)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch_service(&self, name: &str, body: &Value) -> reqwest::Response {
        self.http
            .patch(format!("{}{SERVICES}/{name}", self.registry_url))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete_service(&self, name: &str) -> reqwest::Response {
        self.http
            .delete(format!("{}{SERVICES}/{name}", self.registry_url))
            .send()
            .await
            .unwrap()
    }

    pub async fn refresh(&self, name: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{SERVICES}/{name}/refresh", self.registry_url))
            .send()
            .await
            .unwrap()
    }

    pub async fn registry_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.registry_url))
            .send()
            .await
            .unwrap()
    }

    /// The service as the registry shows it now (its error body if there is none).
    pub async fn service(&self, name: &str) -> Value {
        self.get_json(&format!("{}{SERVICES}/{name}", self.registry_url))
            .await
    }

    pub async fn publisher_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.publisher_url))
            .send()
            .await
            .unwrap()
    }

    /// The JSON body of a GET of `url` (of any service, or of a replica)
    /// with every permission, whatever its status.
    pub async fn get_json(&self, url: &str) -> Value {
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn call_tool(&self, service: &str, tool: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/tools/{service}/{tool}", self.executor_url))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Calls a tool until the answer has error `code` (the executor follows
    /// changes through events); panics with the last answer after 10 s.
    pub async fn wait_for_call_error(
        &self,
        service: &str,
        tool: &str,
        body: &Value,
        code: &str,
    ) -> Value {
        eventually(&format!("{service}/{tool} answers `{code}`"), async || {
            let answer: Value = self
                .call_tool(service, tool, body)
                .await
                .json()
                .await
                .unwrap();
            if answer["code"] == code {
                Ok(answer)
            } else {
                Err(answer)
            }
        })
        .await
    }

    pub async fn openapi(&self) -> Value {
        self.get_json(&format!("{}/openapi.json", self.publisher_url))
            .await
    }

    /// Polls the app's event stream until the events `pick` selects are
    /// `enough` (events are asynchronous); returns them, oldest first.
    pub async fn wait_for_events<T: std::fmt::Debug>(
        &self,
        what: &str,
        pick: impl Fn(Event) -> Option<T>,
        enough: impl Fn(&[T]) -> bool,
    ) -> Vec<T> {
        let bus = EventBus::connect(&self.direct_nats()).await.unwrap();
        eventually(what, async || {
            let picked: Vec<T> = bus
                .stored_events()
                .await
                .unwrap()
                .into_iter()
                .filter_map(|e| pick(e.event))
                .collect();
            if enough(&picked) {
                Ok(picked)
            } else {
                Err(picked)
            }
        })
        .await
    }

    /// Polls the published document until `ready` holds (events are
    /// asynchronous); panics with the last document after 15 s.
    pub async fn wait_for_openapi(&self, ready: impl Fn(&Value) -> bool) -> Value {
        eventually("the document reaches the expected state", async || {
            let doc = self.openapi().await;
            if ready(&doc) {
                Ok(doc)
            } else {
                Err(doc)
            }
        })
        .await
    }
}

/// Tests may run long on a loaded machine: an hour instead of 15 minutes.
fn long_lived(mut claims: Value) -> Value {
    claims["exp"] = (claims["iat"].as_u64().unwrap() + 3600).into();
    claims
}

/// A client that sends `Authorization: Bearer {credential}` with every request.
pub fn authorized_client(credential: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {credential}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for handle in std::mem::take(&mut self.handles) {
            // Not awaited: the runtime ends with the test and takes the servers with it.
            drop(handle.stop(false));
        }
        if let mcpo_core::config::ConfigStore::Dir(dir) = &self.settings.config_store.store {
            let _ = std::fs::remove_dir_all(dir);
        }
        // Our own connection on our own thread: the test's runtime is blocked
        // while we wait, so its NATS client cannot make progress here.
        let nats = self.direct_nats();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                match mcpo_core::events::EventBus::connect(&nats).await {
                    Ok(bus) => {
                        let _ = bus.delete_stream().await;
                    }
                    Err(e) => eprintln!("cannot remove test stream {}: {e}", nats.stream),
                }
            });
        })
        .join();
    }
}
