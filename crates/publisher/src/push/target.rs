//! Where a version goes: files under a directory, objects under an S3
//! prefix, or an API Gateway REST API (imported, then deployed to a stage).

use std::path::{Path, PathBuf};

use actix_web::web::Bytes;
use aws_sdk_apigateway::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_apigateway::primitives::Blob;
use aws_sdk_apigateway::types::PutMode;
use aws_sdk_s3::primitives::ByteStream;
use mcpo_core::aws::{self, AwsSettings, S3Location};
use mcpo_core::config::{ApiGatewayTarget, PublishSettings};

use std::sync::Arc;

use crate::published::{Published, Rendered};

pub enum Target {
    Dir(PathBuf),
    S3 {
        client: aws_sdk_s3::Client,
        location: S3Location,
    },
    ApiGateway {
        client: aws_sdk_apigateway::Client,
        api: ApiGatewayTarget,
    },
}

impl Target {
    /// The targets `settings` configure; AWS clients are built once, here.
    pub async fn connect(settings: &PublishSettings, aws_settings: &AwsSettings) -> Vec<Target> {
        let mut targets = Vec::new();
        if let Some(dir) = &settings.dir {
            targets.push(Target::Dir(dir.clone()));
        }
        if settings.s3.is_none() && settings.apigateway.is_none() {
            return targets;
        }
        let config = aws::sdk_config(aws_settings).await;
        if let Some(location) = &settings.s3 {
            targets.push(Target::S3 {
                client: aws::s3_client(aws_settings, &config),
                location: location.clone(),
            });
        }
        if let Some(api) = &settings.apigateway {
            // API Gateway needs nothing beyond the shared configuration (no
            // addressing style), so its SDK stays out of `mcpo-core`, which
            // every service links.
            targets.push(Target::ApiGateway {
                client: aws_sdk_apigateway::Client::new(&config),
                api: api.clone(),
            });
        }
        targets
    }

    /// The target's name in `openapi_pushes` and in the report: it names the
    /// destination, so pointing a setting elsewhere starts a fresh history.
    pub fn name(&self) -> String {
        match self {
            Target::Dir(dir) => dir_name(dir),
            Target::S3 { location, .. } => location.to_string(),
            Target::ApiGateway { api, .. } => apigateway_name(api),
        }
    }

    /// Delivers `published`. The error is a message fit for logs and the
    /// report (the SDK's errors carry no credentials).
    pub async fn push(&self, published: &Arc<Published>) -> Result<(), String> {
        match self {
            Target::Dir(root) => {
                let yaml = yaml(published).await?;
                for (key, body, _) in files(published, yaml) {
                    let path = root.join(&key);
                    write_file(&path, body)
                        .await
                        .map_err(|e| format!("writing {}: {e}", path.display()))?;
                }
                Ok(())
            }
            Target::S3 { client, location } => {
                let yaml = yaml(published).await?;
                for (key, body, content_type) in files(published, yaml) {
                    client
                        .put_object()
                        .bucket(&location.bucket)
                        .key(location.key(&key))
                        .content_type(content_type)
                        .body(ByteStream::from(body.clone()))
                        .send()
                        .await
                        .map_err(|e| {
                            format!(
                                "putting s3://{}/{}: {}",
                                location.bucket,
                                location.key(&key),
                                describe(&e)
                            )
                        })?;
                }
                Ok(())
            }
            Target::ApiGateway { client, api } => {
                let context =
                    |step: &str, e: String| format!("{step} REST API {}: {e}", api.rest_api_id);
                client
                    .put_rest_api()
                    .rest_api_id(&api.rest_api_id)
                    .mode(PutMode::Overwrite)
                    .fail_on_warnings(api.fail_on_warnings)
                    .body(Blob::new(published.aws.bytes.to_vec()))
                    .send()
                    .await
                    .map_err(|e| context("importing into", describe(&e)))?;
                // API Gateway refuses to deploy an API without methods (no
                // service registered, or all deleted): the stage keeps its
                // last deployment, whose calls the executor answers 404.
                if published.path_count() == 0 {
                    tracing::info!(
                        rest_api = %api.rest_api_id,
                        version = published.version,
                        "the document has no operations: imported, not deployed"
                    );
                    return Ok(());
                }
                // An import changes nothing callers see until it is deployed.
                client
                    .create_deployment()
                    .rest_api_id(&api.rest_api_id)
                    .stage_name(&api.stage)
                    .description(format!("MCPO document version {}", published.version))
                    .send()
                    .await
                    .map_err(|e| {
                        context(&format!("deploying stage `{}` of", api.stage), describe(&e))
                    })?;
                Ok(())
            }
        }
    }
}

/// A service's own code and message, or what went wrong on the way (the
/// SDK's full context, whose response dump would only bury them).
fn describe<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(service) => {
            let e = service.err();
            format!(
                "{}: {}",
                e.code().unwrap_or("error"),
                e.message().unwrap_or("no message")
            )
        }
        other => DisplayErrorContext(other).to_string(),
    }
}

/// The YAML rendering, made now if no one asked for it yet.
async fn yaml(published: &Arc<Published>) -> Result<&Rendered, String> {
    published
        .yaml()
        .await
        .map_err(|e| format!("rendering the YAML document: {e}"))
}

/// The names of the targets `settings` configure, in [`Target::connect`]'s
/// order, without connecting.
pub fn names(settings: &PublishSettings) -> Vec<String> {
    let dir = settings.dir.as_deref().map(dir_name);
    let s3 = settings.s3.as_ref().map(S3Location::to_string);
    let apigateway = settings.apigateway.as_ref().map(apigateway_name);
    [dir, s3, apigateway].into_iter().flatten().collect()
}

fn dir_name(dir: &Path) -> String {
    format!("dir:{}", dir.display())
}

fn apigateway_name(api: &ApiGatewayTarget) -> String {
    format!("apigateway:{}/{}", api.rest_api_id, api.stage)
}

/// The files of a version, relative to the directory or prefix: the
/// version's own copies first, then the top-level ones, so those always
/// name a version whose copies exist.
fn files<'p>(
    published: &'p Published,
    yaml: &'p Rendered,
) -> Vec<(String, &'p Bytes, &'static str)> {
    let documents = [
        ("openapi.json", &published.json.bytes, "application/json"),
        ("openapi.yaml", &yaml.bytes, "application/yaml"),
        ("openapi.aws.json", &published.aws.bytes, "application/json"),
    ];
    let versioned = documents.iter().map(|(name, body, content_type)| {
        (
            format!("versions/{}/{name}", published.version),
            *body,
            *content_type,
        )
    });
    let latest = documents
        .iter()
        .map(|(name, body, content_type)| ((*name).to_owned(), *body, *content_type));
    versioned.chain(latest).collect()
}

/// Writes through a temporary file and a rename, so a reader sees the old
/// file or the new one, never half of one.
async fn write_file(path: &Path, body: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let temporary = PathBuf::from(temporary);
    tokio::fs::write(&temporary, body).await?;
    if let Err(e) = tokio::fs::rename(&temporary, path).await {
        let _ = tokio::fs::remove_file(&temporary).await;
        return Err(e);
    }
    Ok(())
}
