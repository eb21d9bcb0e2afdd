//! The tool executor: `POST /tools/{service}/{tool}`.

pub mod admission;
pub mod calls;
pub mod error;
pub mod events;
pub mod follower;
pub mod misses;
pub mod results;
pub mod routes;
pub mod routing;
pub mod sessions;

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use mcpo_core::auth::authenticate;
use mcpo_core::config::Settings;
use mcpo_core::http::{health_routes, json_errors, not_found, request_id_middleware, KnownRoutes};
use mcpo_core::server::{bind, Application, Dependencies};
use mcpo_core::CoreError;

use crate::calls::Executor;
use crate::routing::RoutingTable;
use crate::sessions::Sessions;

const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Builds the executor: subscribes to events first, then loads every route,
/// so no change made in between is missed.
pub async fn build(settings: &Settings, deps: Dependencies) -> Result<Application, CoreError> {
    let events = deps
        .bus
        .subscribe(&["tools.updated", "service.updated"])
        .await?;
    let routes = Arc::new(RoutingTable::new(
        deps.pool.clone(),
        settings.secret_keys.clone(),
    ));
    let loaded = routes.load_all().await?;
    tracing::info!(services = loaded, "routes loaded");
    let sessions = Arc::new(Sessions::new(
        settings.mcp_connect_timeout,
        mcpo_core::mcp::ConnectPolicy::from_settings(settings),
        sessions::CallerSessions {
            max_per_service: settings.caller_sessions.max_per_service,
            idle: settings.caller_sessions.idle,
        },
    ));
    let reaper = tokio::spawn(close_idle_sessions(
        sessions.clone(),
        settings.caller_sessions.idle,
    ));
    let admission = Arc::new(admission::Admission::new(settings.call_limits));
    let follower = tokio::spawn(follower::follow(
        events,
        deps.bus.connections(),
        routes.clone(),
        follower::Forget {
            sessions: sessions.clone(),
            admission: admission.clone(),
        },
    ));

    let (listener, addr) = bind(settings.executor_addr)?;
    let executor = web::Data::new(Executor {
        routes,
        sessions,
        admission,
        call_timeout: settings.tool_call_timeout,
    });
    let readiness = web::Data::new(deps.readiness(true));
    let known = web::Data::new(KnownRoutes::new(&[(
        "/tools/{service}/{tool}",
        &[Method::POST],
    )]));
    let auth = deps.auth.clone();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(authenticate))
            .wrap(json_errors())
            .wrap(from_fn(request_id_middleware))
            .app_data(auth.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .app_data(executor.clone())
            .app_data(readiness.clone())
            .app_data(known.clone())
            .configure(health_routes)
            .configure(routes::configure)
            .default_service(web::to(not_found))
    })
    .workers(settings.http_workers)
    .shutdown_timeout(settings.shutdown_timeout.as_secs())
    // A client that closes its connection mid-call has gone: the handler is
    // dropped, which cancels the upstream call (`notifications/cancelled`).
    .h1_allow_half_closed(false)
    .listen(listener)
    .map_err(|e| CoreError::Internal(e.to_string()))?
    .run();
    Ok(Application::new(addr, server, vec![reaper, follower]))
}

pub async fn run(settings: Settings) -> Result<(), CoreError> {
    let deps = Dependencies::connect(&settings, "mcpo-executor").await?;
    let app = build(&settings, deps).await?;
    tracing::info!(addr = %app.addr(), "executor listening");
    app.run_until_stopped()
        .await
        .map_err(|e| CoreError::Internal(e.to_string()))
}

/// Closes `per_caller` sessions nobody used for `idle`.
async fn close_idle_sessions(sessions: Arc<Sessions>, idle: std::time::Duration) {
    let mut ticks = tokio::time::interval((idle / 4).max(std::time::Duration::from_millis(250)));
    loop {
        ticks.tick().await;
        let closed = sessions.close_idle();
        if closed > 0 {
            tracing::info!(closed, "closed idle caller sessions");
        }
    }
}
