//! The shape every service shares: bind a listener (port 0 in tests), run the
//! actix server plus background tasks, and stop them together.

use std::net::{SocketAddr, TcpListener};

use actix_web::dev::{Server, ServerHandle};
use tokio::task::JoinHandle;

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::db::{self, DbPool};
use crate::error::CoreError;
use crate::events::EventBus;
use crate::http::Readiness;

/// A built service, bound but not yet running.
pub struct Application {
    addr: SocketAddr,
    server: Server,
    background: Vec<JoinHandle<()>>,
}

impl Application {
    pub fn new(addr: SocketAddr, server: Server, background: Vec<JoinHandle<()>>) -> Self {
        Application {
            addr,
            server,
            background,
        }
    }

    /// The address actually bound (the real port when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server stops (signal or handle), then stops the
    /// background tasks.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        for task in self.background {
            task.abort();
        }
        result
    }
}

pub fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), CoreError> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| CoreError::Config(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| CoreError::Internal(e.to_string()))?;
    Ok((listener, bound))
}

/// The database pool, event bus and authenticator a service needs.
#[derive(Clone)]
pub struct Dependencies {
    pub pool: DbPool,
    pub bus: EventBus,
    pub auth: actix_web::web::Data<Authenticator>,
}

impl Dependencies {
    pub async fn connect(
        settings: &Settings,
        application_name: &str,
    ) -> Result<Dependencies, CoreError> {
        let pool = db::build_pool(&settings.database, application_name)?;
        let bus = EventBus::connect(&settings.nats).await?;
        let auth = Authenticator::new(&settings.auth, pool.clone());
        if auth.is_disabled() {
            tracing::warn!("authentication is {}", auth.describe());
        } else {
            tracing::info!("authentication: {}", auth.describe());
        }
        Ok(Dependencies {
            pool,
            bus,
            auth: actix_web::web::Data::new(auth),
        })
    }

    pub fn readiness(&self, require_nats: bool) -> Readiness {
        Readiness {
            pool: self.pool.clone(),
            bus: self.bus.clone(),
            require_nats,
        }
    }
}

/// Keeps stdio servers (which run as our user) from reading this process's
/// memory and `/proc/<pid>/environ`, where the database URL and the secret
/// keys are: a process that is not dumpable is only readable by root.
pub fn protect_process() {
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!(error = %e, "cannot mark the process as not dumpable");
    }
}

/// The body of every service binary: read settings, start logging, run, and
/// turn an error into a log line and a failing exit code.
pub async fn run_binary<F, Fut>(name: &str, run: F) -> std::process::ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = Result<(), CoreError>>,
{
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{name}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    crate::telemetry::init(settings.log_format);
    protect_process();
    match run(settings).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "{name} stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
