//! The OpenAPI publisher: `GET /openapi.json`.

pub mod document;
pub mod publisher;

use std::sync::Arc;

use actix_web::http::{header, Method};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use mcpo_core::config::Settings;
use mcpo_core::http::{health_routes, json_errors, not_found, request_id_middleware, KnownRoutes};
use mcpo_core::server::{bind, Application, Dependencies};
use mcpo_core::CoreError;

use crate::publisher::Publisher;

pub async fn build(settings: &Settings, deps: Dependencies) -> Result<Application, CoreError> {
    let events = deps
        .bus
        .subscribe(&["tools.updated", "service.updated"])
        .await?;
    let publisher =
        Publisher::start(deps.pool.clone(), settings.executor_public_url.clone()).await?;
    let follower = tokio::spawn(publisher.clone().follow(events));
    let (listener, addr) = bind(settings.publisher_addr)?;
    let publisher = web::Data::from(publisher);
    let readiness = web::Data::new(deps.readiness(true));
    let known = web::Data::new(KnownRoutes::new(&[("/openapi.json", &[Method::GET])]));
    let server = HttpServer::new(move || {
        App::new()
            .wrap(json_errors())
            .wrap(from_fn(request_id_middleware))
            .app_data(publisher.clone())
            .app_data(readiness.clone())
            .app_data(known.clone())
            .configure(health_routes)
            .route("/openapi.json", web::get().to(openapi_json))
            .default_service(web::to(not_found))
    })
    .workers(settings.http_workers)
    .listen(listener)
    .map_err(|e| CoreError::Internal(e.to_string()))?
    .run();
    Ok(Application::new(addr, server, vec![follower]))
}

async fn openapi_json(publisher: web::Data<Publisher>, req: HttpRequest) -> HttpResponse {
    let current: Arc<publisher::Published> = publisher.current();
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == current.etag));
    if matches {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, current.etag.clone()))
            .finish();
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::ETAG, current.etag.clone()))
        .body(current.json.clone())
}

pub async fn run(settings: Settings) -> Result<(), CoreError> {
    let deps = Dependencies::connect(&settings, "mcpo-publisher").await?;
    let app = build(&settings, deps).await?;
    tracing::info!(addr = %app.addr(), "publisher listening");
    app.run_until_stopped()
        .await
        .map_err(|e| CoreError::Internal(e.to_string()))
}
