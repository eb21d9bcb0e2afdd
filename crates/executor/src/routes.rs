use actix_web::{web, HttpRequest, HttpResponse};
use mcpo_core::auth::Caller;
use mcpo_core::ApiError;

use crate::calls::{CallRequest, CallerKeys, Executor};
use crate::events;
use crate::results::Answer;

/// Lets one principal keep several sessions of a `per_caller` service apart.
pub const SESSION_KEY_HEADER: &str = "x-session-key";
const MAX_SESSION_KEY_LEN: usize = 128;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tools/{service}/{tool}", web::post().to(call_tool));
}

/// Needs `tools:invoke` or `tools:invoke:{service}`. With `Accept:
/// text/event-stream` the answer is a stream of server-sent events: the
/// server's progress as it comes, then the result (or the error).
async fn call_tool(
    caller: Caller,
    executor: web::Data<Executor>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (service, tool) = path.into_inner();
    caller.require_invoke(&service)?;
    let request = CallRequest {
        request_id: mcpo_core::http::request_id(&req),
        keys: caller_keys(&caller, &req)?,
        accept: req
            .headers()
            .get(actix_web::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    if request.accept.as_deref().is_some_and(wants_events) {
        return Ok(events::stream(
            executor.into_inner(),
            service,
            tool,
            body,
            request,
        ));
    }
    let answer = executor
        .call(&service, &tool, &body, &request, None)
        .await?;
    Ok(match answer {
        Answer::Json(value) => HttpResponse::Ok().json(value),
        Answer::Bytes { mime, bytes } => HttpResponse::Ok().content_type(mime).body(bytes),
    })
}

fn wants_events(accept: &str) -> bool {
    accept.split(',').any(|range| {
        range
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case("text/event-stream")
    })
}

/// The principal's share of the limits, and its session: the principal,
/// plus `X-Session-Key` when sent (scoped to the principal, so a key cannot
/// reach another caller's session).
fn caller_keys(caller: &Caller, req: &HttpRequest) -> Result<CallerKeys, ApiError> {
    let share = caller.key();
    let session = match req.headers().get(SESSION_KEY_HEADER) {
        None => share.clone(),
        Some(value) => {
            let key = value
                .to_str()
                .ok()
                .filter(|k| {
                    !k.is_empty()
                        && k.len() <= MAX_SESSION_KEY_LEN
                        && k.bytes().all(|b| b.is_ascii_graphic())
                })
                .ok_or_else(|| {
                    ApiError::new(
                        mcpo_core::ErrorCode::BadRequest,
                        format!("X-Session-Key must be 1 to {MAX_SESSION_KEY_LEN} visible ASCII characters"),
                    )
                })?;
            format!("{share}\n{key}")
        }
    };
    Ok(CallerKeys { share, session })
}
