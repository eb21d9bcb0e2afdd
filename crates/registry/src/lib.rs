//! The registry service: `/api/v1/mcpo/services`.

pub mod config_file;
pub mod error;
pub mod monitor;
pub mod routes;
pub mod services;
pub mod store;

use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpResponse, HttpServer};
use mcpo_core::config::Settings;
use mcpo_core::http::{
    health_routes, json_config, json_errors, not_found, query_config, request_id_middleware,
    KnownRoutes,
};
use mcpo_core::outbox::Relay;
use mcpo_core::server::{bind, Application, Dependencies};
use mcpo_core::CoreError;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_scalar::{Scalar, Servable};

pub use services::Registry;

const MAX_BODY_BYTES: usize = 256 * 1024;

/// Builds the registry on `settings.registry_addr` (port 0 picks a free port).
pub fn build(settings: &Settings, deps: Dependencies) -> Result<Application, CoreError> {
    let (listener, addr) = bind(settings.registry_addr)?;
    let relay = Relay::new(deps.pool.clone(), deps.bus.clone());
    let registry = web::Data::new(Registry::new(settings, deps.pool.clone(), relay.waker()));
    let mut background = Vec::new();
    if let Some(interval) = settings.status_interval {
        let monitor = monitor::Monitor {
            pool: deps.pool.clone(),
            interval,
            outbox_wake: relay.waker(),
        };
        background.push(tokio::spawn(monitor.run()));
    }
    background.push(tokio::spawn(relay.run()));
    let readiness = web::Data::new(deps.readiness(false));
    let server = HttpServer::new(move || {
        let (app, api) = App::new()
            .into_utoipa_app()
            .openapi(routes::RegistryApi::openapi())
            .configure(routes::configure)
            .split_for_parts();
        let api_json = web::Data::new(api.clone());
        let known = web::Data::new(
            KnownRoutes::new(&[
                ("/api/v1/openapi.json", &[Method::GET]),
                ("/api/v1/docs", &[Method::GET]),
            ])
            .with_openapi(&api),
        );
        app.wrap(json_errors())
            .wrap(from_fn(request_id_middleware))
            .app_data(json_config(MAX_BODY_BYTES))
            .app_data(query_config())
            .app_data(registry.clone())
            .app_data(readiness.clone())
            .app_data(api_json)
            .app_data(known)
            .configure(health_routes)
            .route("/api/v1/openapi.json", web::get().to(openapi_json))
            .service(Scalar::with_url("/api/v1/docs", api).title("MCPO registry API"))
            .default_service(web::to(not_found))
    })
    .workers(settings.http_workers)
    .listen(listener)
    .map_err(|e| CoreError::Internal(e.to_string()))?
    .run();
    Ok(Application::new(addr, server, background))
}

async fn openapi_json(api: web::Data<utoipa::openapi::OpenApi>) -> HttpResponse {
    HttpResponse::Ok().json(api.get_ref())
}

/// The registry API document, as `/api/v1/openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    App::new()
        .into_utoipa_app()
        .openapi(routes::RegistryApi::openapi())
        .configure(routes::configure)
        .split_for_parts()
        .1
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
