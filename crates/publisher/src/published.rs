//! Everything served from one rebuild, made from the registry's records by
//! two pure functions: [`prepare`] builds the platform document and its
//! canonical hash (which tells whether it is a new version), [`render`]
//! renders what is served once the version is known. `Publisher::rebuild`
//! runs both around storing the version; benches/document.rs runs both.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use actix_web::web::Bytes;
use mcpo_core::config::ApiGatewayAuthorizer;
use mcpo_core::db::queries::ServiceRecord;
use mcpo_core::domain::schema_hash::canonical_hash;
use mcpo_core::CoreError;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::document::{self, Platform};
use crate::{aws, service_document};

/// One document, rendered: its bytes, and their hash as `ETag`, made when
/// first asked for (most services' documents never are).
pub struct Rendered {
    pub bytes: Bytes,
    etag: OnceLock<String>,
}

impl Rendered {
    pub fn new(bytes: impl Into<Bytes>) -> Rendered {
        Rendered {
            bytes: bytes.into(),
            etag: OnceLock::new(),
        }
    }

    pub fn etag(&self) -> &str {
        self.etag
            .get_or_init(|| format!("\"{}\"", hex::encode(&Sha256::digest(&self.bytes)[..16])))
    }
}

/// Everything served from one rebuild: the platform document as JSON and
/// YAML, its API Gateway flavour, and one JSON document per service.
pub struct Published {
    /// The stored version this is (`info.version`).
    pub version: i64,
    pub json: Rendered,
    /// Made from `json` when first asked for: see [`Published::yaml`].
    yaml: OnceLock<Rendered>,
    /// The API Gateway flavour (OpenAPI 3.0.1) of the platform document.
    pub aws: Rendered,
    pub by_service: HashMap<String, Rendered>,
    /// How many paths (tools) the document has.
    pub path_count: usize,
}

impl Published {
    /// What is served before the first rebuild: nothing.
    pub fn empty() -> Published {
        Published {
            version: 0,
            json: Rendered::new(Vec::new()),
            yaml: OnceLock::from(Rendered::new(Vec::new())),
            aws: Rendered::new(Vec::new()),
            by_service: HashMap::new(),
            path_count: 0,
        }
    }

    /// The YAML rendering. Made on first use, on the blocking pool: for
    /// thousands of tools it takes longer than the rest of a rebuild, and
    /// only `/openapi.yaml` and the file and S3 push targets need it.
    pub async fn yaml(self: &Arc<Self>) -> Result<&Rendered, CoreError> {
        if self.yaml.get().is_none() {
            let published = Arc::clone(self);
            tokio::task::spawn_blocking(move || published.yaml_now().map(drop))
                .await
                .map_err(|e| CoreError::Internal(format!("YAML rendering failed: {e}")))??;
        }
        self.yaml_now()
    }

    /// The YAML rendering, made on this thread if it is not yet.
    pub fn yaml_now(&self) -> Result<&Rendered, CoreError> {
        if let Some(yaml) = self.yaml.get() {
            return Ok(yaml);
        }
        let yaml = yaml_of(&self.json.bytes)?;
        Ok(self.yaml.get_or_init(|| Rendered::new(yaml)))
    }
}

/// The YAML rendering of a rendered JSON document.
pub fn yaml_of(json: &[u8]) -> Result<Vec<u8>, CoreError> {
    // The JSON's tree again: the same document (floats round-trip).
    let doc: Value = serde_json::from_slice(json).map_err(internal)?;
    Ok(serde_yaml_ng::to_string(&doc)
        .map_err(internal)?
        .into_bytes())
}

/// The platform document before it has a version, and what the services'
/// own documents take of it.
pub struct Prepared {
    pub platform: Platform,
    /// The document's canonical hash, compared with the latest version's.
    pub hash: String,
}

/// Builds the platform document of `services` and hashes it.
pub fn prepare(services: &[ServiceRecord], executor_url: &str) -> Prepared {
    let mut platform = document::platform(services, executor_url);
    // Hashed without a number, so that the number does not make it new.
    platform.document["info"]["version"] = Value::String(String::new());
    let hash = canonical_hash(&platform.document);
    Prepared { platform, hash }
}

/// Every rendering of `prepared` as version `version`: JSON, the API Gateway
/// flavour and one document per service (`services`, as prepared); YAML
/// waits until asked for. The document's tree is dropped here.
pub fn render(
    version: i64,
    prepared: Prepared,
    services: &[ServiceRecord],
    executor_url: &str,
    authorizer: Option<&ApiGatewayAuthorizer>,
) -> Result<Published, CoreError> {
    let mut platform = prepared.platform;
    platform.document["info"]["version"] = Value::String(version.to_string());
    let doc = &platform.document;
    let json = serde_json::to_vec_pretty(doc).map_err(internal)?;
    let aws = aws::render(doc, authorizer).map_err(internal)?;
    let mut by_service = HashMap::with_capacity(services.len());
    for (index, record) in services.iter().enumerate() {
        let bytes =
            service_document::render(&platform, index, record, executor_url).map_err(internal)?;
        by_service.insert(record.service.name.clone(), Rendered::new(bytes));
    }
    let path_count = doc["paths"].as_object().map_or(0, |paths| paths.len());
    Ok(Published {
        version,
        json: Rendered::new(json),
        yaml: OnceLock::new(),
        aws: Rendered::new(aws),
        by_service,
        path_count,
    })
}

fn internal(e: impl std::fmt::Display) -> CoreError {
    CoreError::Internal(e.to_string())
}
