//! The OpenAPI publisher: `GET /openapi.json` (and `.yaml`), its API Gateway
//! flavour `GET /openapi.aws.json`, one document per service, `/docs`; new
//! versions pushed to the configured targets, reported at `GET /pushes`.

pub mod aws;
pub mod document;
mod pieces;
pub mod pretty;
pub mod published;
pub mod publisher;
pub mod push;
pub mod schema;
pub mod versions;
pub mod view;

use actix_web::http::{header, Method};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use mcpo_core::auth::{authenticate, Authorized, OpenapiRead, RegistryAdmin};
use mcpo_core::config::Settings;
use mcpo_core::http::{
    health_routes, json_errors, not_found, query_config, request_id_middleware, KnownRoutes,
};
use mcpo_core::outbox::Relay;
use mcpo_core::server::{bind, Application, Dependencies};
use mcpo_core::CoreError;

use crate::published::Rendered;
use crate::publisher::Publisher;
use actix_web::ResponseError;
use mcpo_core::{ApiError, ErrorCode};

pub async fn build(settings: &Settings, deps: Dependencies) -> Result<Application, CoreError> {
    let events = deps
        .bus
        .subscribe(&["tools.updated", "service.updated"])
        .await?;
    let relay = Relay::new(
        deps.pool.clone(),
        deps.bus.clone(),
        settings.outbox_retention,
    );
    let publisher = Publisher::start(
        deps.pool.clone(),
        settings.executor_public_url.clone(),
        settings.apigateway_authorizer.clone(),
        settings.publish.versions_kept,
        relay.waker(),
    )
    .await?;
    let relay = tokio::spawn(relay.run());
    let follower = tokio::spawn(publisher.clone().follow(events));
    let pusher = push::Pusher::new(settings, deps.pool.clone(), publisher.clone());
    let push_status = web::Data::new(pusher.status());
    let pusher = tokio::spawn(pusher.run());
    let (listener, addr) = bind(settings.publisher_addr)?;
    let publisher = web::Data::from(publisher);
    let readiness = web::Data::new(deps.readiness(true));
    let known = web::Data::new(KnownRoutes::new(&[
        ("/openapi.json", &[Method::GET]),
        ("/openapi.yaml", &[Method::GET]),
        ("/openapi.aws.json", &[Method::GET]),
        ("/services/{name}/openapi.json", &[Method::GET]),
        ("/docs", &[Method::GET]),
        ("/pushes", &[Method::GET]),
    ]));
    let auth = deps.auth.clone();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(authenticate))
            .wrap(json_errors())
            .wrap(from_fn(request_id_middleware))
            .app_data(auth.clone())
            .app_data(publisher.clone())
            .app_data(push_status.clone())
            .app_data(readiness.clone())
            .app_data(known.clone())
            .app_data(query_config())
            .configure(health_routes)
            .route("/openapi.json", web::get().to(openapi_json))
            .route("/openapi.yaml", web::get().to(openapi_yaml))
            .route("/openapi.aws.json", web::get().to(openapi_aws_json))
            .route(
                "/services/{name}/openapi.json",
                web::get().to(service_openapi_json),
            )
            .route("/docs", web::get().to(docs))
            .route("/pushes", web::get().to(pushes))
            .default_service(web::to(not_found))
    })
    .workers(settings.http_workers)
    .shutdown_timeout(settings.shutdown_timeout.as_secs())
    .listen(listener)
    .map_err(|e| CoreError::Internal(e.to_string()))?
    .run();
    Ok(Application::new(
        addr,
        server,
        vec![follower, relay, pusher],
    ))
}

#[derive(serde::Deserialize)]
struct VersionQuery {
    version: Option<i64>,
}

/// The current document, or with `?version=N` a stored older one.
async fn openapi_json(
    _auth: Authorized<OpenapiRead>,
    publisher: web::Data<Publisher>,
    query: web::Query<VersionQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let current = publisher.current();
    let (version, rendered) = match query.version {
        None => (current.version, None),
        Some(version) if version == current.version => (version, None),
        Some(version) => {
            let stored = publisher.stored(version).await?.ok_or_else(|| {
                let kept = publisher.versions_kept();
                let message = if (1..=current.version - kept).contains(&version) {
                    format!(
                        "version {version} is no longer stored: the latest {kept} versions are \
                         (MCPO_OPENAPI_VERSIONS_KEPT)"
                    )
                } else {
                    format!("no document was published as version {version}")
                };
                ApiError::new(ErrorCode::VersionNotFound, message)
            })?;
            let bytes = serde_json::to_vec_pretty(&stored)
                .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
            (version, Some(Rendered::new(bytes)))
        }
    };
    let mut response = serve(
        rendered.as_ref().unwrap_or(&current.json),
        "application/json",
        &req,
    );
    response.headers_mut().insert(
        header::HeaderName::from_static("x-mcpo-document-version"),
        header::HeaderValue::from(version),
    );
    Ok(response)
}

async fn openapi_yaml(
    _auth: Authorized<OpenapiRead>,
    publisher: web::Data<Publisher>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let current = publisher.current();
    Ok(serve(current.yaml().await?, "application/yaml", &req))
}

/// The API Gateway flavour (OpenAPI 3.0.1) of the current document.
async fn openapi_aws_json(
    _auth: Authorized<OpenapiRead>,
    publisher: web::Data<Publisher>,
    req: HttpRequest,
) -> HttpResponse {
    serve(&publisher.current().aws, "application/json", &req)
}

async fn service_openapi_json(
    _auth: Authorized<OpenapiRead>,
    publisher: web::Data<Publisher>,
    name: web::Path<String>,
    req: HttpRequest,
) -> HttpResponse {
    match publisher.current().service(name.as_str()) {
        Some(rendered) => serve(rendered, "application/json", &req),
        None => ApiError::new(
            ErrorCode::ServiceNotFound,
            format!("no service named `{name}` is registered"),
        )
        .error_response(),
    }
}

/// An interactive page over the current document (the Scalar viewer, loaded
/// from its CDN by the reader's browser). The document is embedded: the
/// browser could not send credentials to fetch it.
async fn docs(_auth: Authorized<OpenapiRead>, publisher: web::Data<Publisher>) -> HttpResponse {
    let document = String::from_utf8_lossy(&publisher.current().json.bytes)
        // Inside <script>, only `</` can end the element early.
        .replace("</", "<\\/");
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!("{DOCS_HEAD}{document}{DOCS_TAIL}"))
}

const DOCS_HEAD: &str = r#"<!doctype html>
<html>
<head><meta charset="utf-8"><title>MCPO tools</title></head>
<body>
<script id="api-reference" type="application/json">"#;

const DOCS_TAIL: &str = r#"</script>
<script src="https://cdn.jsdelivr.net/npm/@scalar/api-reference"></script>
</body>
</html>
"#;

/// How the current version reached each push target. Admin only: it names
/// buckets, REST APIs and AWS's error messages, which document readers
/// (gateways, portals) need not see.
async fn pushes(
    _auth: Authorized<RegistryAdmin>,
    publisher: web::Data<Publisher>,
    status: web::Data<push::PushStatus>,
) -> Result<HttpResponse, ApiError> {
    let report = status.report(publisher.current().version).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// The bytes with their `ETag`, or 304 when the caller has them already.
fn serve(rendered: &Rendered, content_type: &str, req: &HttpRequest) -> HttpResponse {
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == rendered.etag() || tag.trim() == "*")
        });
    if matches {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, rendered.etag()))
            .finish();
    }
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::ETAG, rendered.etag()))
        // Shared, not copied: the platform's documents are megabytes.
        .body(rendered.bytes.clone())
}

pub async fn run(settings: Settings) -> Result<(), CoreError> {
    let deps = Dependencies::connect(&settings, "mcpo-publisher").await?;
    let app = build(&settings, deps).await?;
    tracing::info!(addr = %app.addr(), "publisher listening");
    app.run_until_stopped()
        .await
        .map_err(|e| CoreError::Internal(e.to_string()))
}
