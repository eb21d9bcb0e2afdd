//! HTTP handlers: extract, call `Registry`, map the answer.

use actix_web::{web, HttpResponse};
use mcpo_core::ApiError;

use crate::services::{RegisterService, Registry};

type Result<T> = std::result::Result<T, ApiError>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/mcpo/services")
            .route("", web::post().to(register))
            .route("", web::get().to(list))
            .route("/{name}", web::get().to(get))
            .route("/{name}", web::delete().to(delete))
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
        .json(service))
}

async fn list(registry: web::Data<Registry>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(serde_json::json!({ "services": registry.list().await? })))
}

async fn get(registry: web::Data<Registry>, name: web::Path<String>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(registry.get(&name).await?))
}

async fn tools(registry: web::Data<Registry>, name: web::Path<String>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(serde_json::json!({ "tools": registry.tools(&name).await? })))
}

async fn refresh(registry: web::Data<Registry>, name: web::Path<String>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(registry.refresh(&name).await?))
}

async fn delete(registry: web::Data<Registry>, name: web::Path<String>) -> Result<HttpResponse> {
    registry.delete(&name).await?;
    Ok(HttpResponse::NoContent().finish())
}
