//! HTTP handlers: extract, call `Registry`, map the answer.

use actix_web::http::header::{ETAG, IF_MATCH};
use actix_web::{web, HttpRequest, HttpResponse};
use mcpo_core::ApiError;

use crate::services::{etag, IfMatch, RegisterService, Registry, UpdateService};

type Result<T> = std::result::Result<T, ApiError>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/mcpo/services")
            .route("", web::post().to(register))
            .route("", web::get().to(list))
            .route("/{name}", web::get().to(get))
            .route("/{name}", web::delete().to(delete))
            .route("/{name}", web::patch().to(update))
            .route("/{name}/tools", web::get().to(tools))
            .route("/{name}/refresh", web::post().to(refresh)),
    );
}

async fn register(
    registry: web::Data<Registry>,
    body: web::Json<RegisterService>,
) -> Result<HttpResponse> {
    let service = registry.register(body.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            "Location",
            format!("/api/v1/mcpo/services/{}", service.name),
        ))
        .insert_header((ETAG, etag(service.revision)))
        .json(service))
}

async fn list(registry: web::Data<Registry>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(serde_json::json!({ "services": registry.list().await? })))
}

async fn get(registry: web::Data<Registry>, name: web::Path<String>) -> Result<HttpResponse> {
    let service = registry.get(&name).await?;
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, etag(service.revision)))
        .json(service))
}

async fn update(
    registry: web::Data<Registry>,
    name: web::Path<String>,
    req: HttpRequest,
    body: web::Json<UpdateService>,
) -> Result<HttpResponse> {
    let if_match = req
        .headers()
        .get(IF_MATCH)
        .map(|v| IfMatch::parse(v.to_str().unwrap_or("")));
    let service = registry.update(&name, body.into_inner(), if_match).await?;
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, etag(service.revision)))
        .json(service))
}

async fn tools(registry: web::Data<Registry>, name: web::Path<String>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(serde_json::json!({ "tools": registry.tools(&name).await? })))
}

async fn refresh(registry: web::Data<Registry>, name: web::Path<String>) -> Result<HttpResponse> {
    let outcome = registry.refresh(&name).await?;
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, etag(outcome.service.revision)))
        .json(outcome))
}

async fn delete(registry: web::Data<Registry>, name: web::Path<String>) -> Result<HttpResponse> {
    registry.delete(&name).await?;
    Ok(HttpResponse::NoContent().finish())
}
