use actix_web::{web, HttpRequest, HttpResponse};
use mcpo_core::auth::Caller;
use mcpo_core::ApiError;

use crate::calls::Executor;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tools/{service}/{tool}", web::post().to(call_tool));
}

/// Needs `tools:invoke` or `tools:invoke:{service}`.
async fn call_tool(
    caller: Caller,
    executor: web::Data<Executor>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (service, tool) = path.into_inner();
    caller.require_invoke(&service)?;
    let request_id = mcpo_core::http::request_id(&req);
    let answer = executor
        .call(&service, &tool, &body, request_id.as_deref(), &caller.key())
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}
