//! The registry service: `/api/v1/mcpo/services`.

pub mod error;
pub mod routes;
pub mod services;
pub mod store;

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use mcpo_core::config::Settings;
use mcpo_core::http::{health_routes, json_config, json_errors, not_found, request_id_middleware};
use mcpo_core::outbox::Relay;
use mcpo_core::server::{bind, Application, Dependencies};
use mcpo_core::CoreError;

pub use services::Registry;

const MAX_BODY_BYTES: usize = 256 * 1024;

/// Builds the registry on `settings.registry_addr` (port 0 picks a free port).
pub fn build(settings: &Settings, deps: Dependencies) -> Result<Application, CoreError> {
    let (listener, addr) = bind(settings.registry_addr)?;
    let relay = Relay::new(deps.pool.clone(), deps.bus.clone());
    let registry = web::Data::new(Registry::new(settings, deps.pool.clone(), relay.waker()));
    let relay = tokio::spawn(relay.run());
    let readiness = web::Data::new(deps.readiness(false));
    let server = HttpServer::new(move || {
        App::new()
            .wrap(json_errors())
            .wrap(from_fn(request_id_middleware))
            .app_data(json_config(MAX_BODY_BYTES))
            .app_data(registry.clone())
            .app_data(readiness.clone())
            .configure(health_routes)
            .configure(routes::configure)
            .default_service(web::to(not_found))
    })
    .workers(settings.http_workers)
    .listen(listener)
    .map_err(|e| CoreError::Internal(e.to_string()))?
    .run();
    Ok(Application::new(addr, server, vec![relay]))
}

/// What the binary does: apply migrations, connect, serve.
pub async fn run(settings: Settings) -> Result<(), CoreError> {
    mcpo_core::db::run_migrations(&settings.database.url).await?;
    let deps = Dependencies::connect(&settings, "mcpo-registry").await?;
    let app = build(&settings, deps)?;
    tracing::info!(addr = %app.addr(), "registry listening");
    app.run_until_stopped()
        .await
        .map_err(|e| CoreError::Internal(e.to_string()))
}
