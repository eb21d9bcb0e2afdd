//! The registry service: `/api/v1/mcpo/services`.

pub mod api_keys;
pub mod audit;
pub mod config_file;
pub mod error;
pub mod monitor;
pub mod routes;
pub mod services;
pub mod snapshots;
pub mod store;

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpResponse, HttpServer};
use mcpo_core::auth::document::add_security;
use mcpo_core::auth::{authenticate, Authorized, RegistryRead};
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
use utoipa_scalar::Scalar;

pub use services::Registry;

const MAX_BODY_BYTES: usize = 256 * 1024;

/// Builds the registry on `settings.registry_addr` (port 0 picks a free port).
pub fn build(settings: &Settings, deps: Dependencies) -> Result<Application, CoreError> {
    let (listener, addr) = bind(settings.registry_addr)?;
    let relay = Relay::new(
        deps.pool.clone(),
        deps.bus.clone(),
        settings.outbox_retention,
    );
    let registry = Arc::new(Registry::new(settings, deps.pool.clone(), relay.waker()));
    let mut background = Vec::new();
    if let Some(interval) = settings.status_interval {
        let monitor = monitor::Monitor {
            pool: deps.pool.clone(),
            interval,
            outbox_wake: relay.waker(),
            policy: mcpo_core::mcp::ConnectPolicy::from_settings(settings),
            secret_keys: settings.secret_keys.clone(),
            registry: registry.clone(),
        };
        background.push(tokio::spawn(monitor.run()));
    }
    let registry = web::Data::from(registry);
    background.push(tokio::spawn(relay.run()));
    background.push(tokio::spawn(
        snapshots::Uploader::new(settings, deps.pool.clone()).run(),
    ));
    let config_store = web::Data::new(settings.config_store.store.clone());
    let readiness = web::Data::new(deps.readiness(false));
    let auth = deps.auth.clone();
    let server = HttpServer::new(move || {
        let (app, api) = App::new()
            .into_utoipa_app()
            .openapi(routes::RegistryApi::openapi())
            .configure(routes::configure)
            .split_for_parts();
        let document = secured(&api);
        let docs_html = web::Data::new(DocsPage(
            Scalar::new(document.clone())
                .title("MCPO registry API")
                .to_html(),
        ));
        let api_json = web::Data::new(RegistryDocument(document));
        let known = web::Data::new(
            KnownRoutes::new(&[
                ("/api/v1/openapi.json", &[Method::GET]),
                ("/api/v1/docs", &[Method::GET]),
            ])
            .with_openapi(&api),
        );
        app.wrap(from_fn(authenticate))
            .wrap(json_errors())
            .wrap(from_fn(request_id_middleware))
            .app_data(auth.clone())
            .app_data(json_config(MAX_BODY_BYTES))
            .app_data(query_config())
            .app_data(registry.clone())
            .app_data(config_store.clone())
            .app_data(readiness.clone())
            .app_data(api_json)
            .app_data(known)
            .configure(health_routes)
            .app_data(docs_html)
            .route("/api/v1/openapi.json", web::get().to(openapi_json))
            .route("/api/v1/docs", web::get().to(docs))
            .default_service(web::to(not_found))
    })
    .workers(settings.http_workers)
    .shutdown_timeout(settings.shutdown_timeout.as_secs())
    .listen(listener)
    .map_err(|e| CoreError::Internal(e.to_string()))?
    .run();
    Ok(Application::new(addr, server, background))
}

/// The registry API document, as served.
struct RegistryDocument(serde_json::Value);

async fn openapi_json(
    _auth: Authorized<RegistryRead>,
    document: web::Data<RegistryDocument>,
) -> HttpResponse {
    HttpResponse::Ok().json(&document.0)
}

struct DocsPage(String);

/// The API reference page; it embeds the document, so it needs what the
/// document needs.
async fn docs(_auth: Authorized<RegistryRead>, page: web::Data<DocsPage>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page.0.clone())
}

/// The registry API document, as `/api/v1/openapi.json` serves it.
pub fn openapi() -> serde_json::Value {
    secured(
        &App::new()
            .into_utoipa_app()
            .openapi(routes::RegistryApi::openapi())
            .configure(routes::configure)
            .split_for_parts()
            .1,
    )
}

/// The document with its security schemes and authentication answers.
fn secured(api: &utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut document = serde_json::to_value(api).expect("a utoipa document serializes");
    add_security(&mut document, "ErrorBody");
    document
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
