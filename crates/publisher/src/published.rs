//! Everything served from one rebuild, made from the registry's records by
//! two pure functions: [`prepare`] translates every tool and renders its
//! path item and schemas in both flavours (OpenAPI 3.1, API Gateway's 3.0.1)
//! at the depth they take in a document, and hashes them (the hash tells
//! whether the document is a new version); [`render`] assembles the
//! documents from those pieces once the version is known. No rendering
//! walks a tree of the whole document: each tool's trees are small and
//! dropped once rendered, the services' parts are rendered on every core,
//! and a service's own document is assembled from the platform document's
//! bytes when first asked for. `Publisher::rebuild` runs both around
//! storing the version; benches/document.rs runs both; tests/rendering.rs
//! checks each rendering is the rendering of its tree ([`document::build`],
//! [`aws::convert`](crate::aws::convert)).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use actix_web::web::Bytes;
use mcpo_core::config::ApiGatewayAuthorizer;
use mcpo_core::db::queries::ServiceRecord;
use mcpo_core::CoreError;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::document;
use crate::pieces::{self, Members, Translated};
use crate::pretty::{self, Splice};
use crate::view::Part;

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
    yaml: tokio::sync::OnceCell<Rendered>,
    /// The API Gateway flavour (OpenAPI 3.0.1) of the platform document.
    pub aws: Rendered,
    services: HashMap<String, ServiceDocument>,
    /// Each path of `json`, and where its path item is in `json`: a
    /// service's document copies its own.
    paths: Vec<(String, Range<usize>)>,
    /// Each component schema of `json`, and where it is.
    schemas: Vec<(String, Range<usize>)>,
    executor_url: String,
}

/// A service's own document, assembled from the platform document's
/// pieces when first asked for (most never are); made at once when it
/// must be built alone.
struct ServiceDocument {
    made: OnceLock<Rendered>,
    pieces: ServicePieces,
}

struct ServicePieces {
    tag: Value,
    revision: i64,
    /// Indices into `Published::paths` and `Published::schemas`, in order.
    paths: Vec<usize>,
    schemas: Vec<usize>,
}

impl Published {
    /// What is served before the first rebuild: nothing.
    pub fn empty() -> Published {
        Published {
            version: 0,
            json: Rendered::new(Vec::new()),
            yaml: tokio::sync::OnceCell::new_with(Some(Rendered::new(Vec::new()))),
            aws: Rendered::new(Vec::new()),
            services: HashMap::new(),
            paths: Vec::new(),
            schemas: Vec::new(),
            executor_url: String::new(),
        }
    }

    /// How many paths (tools) the document has.
    pub fn path_count(&self) -> usize {
        self.paths.len()
    }

    /// How many services have a document.
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// The document of the service named `name`: what [`document::build`]
    /// gives for it alone, with its revision as `info.version`.
    pub fn service<'s>(&'s self, name: &str) -> Option<&'s Rendered> {
        let document = self.services.get(name)?;
        Some(document.made.get_or_init(|| {
            let pieces = &document.pieces;
            let skeleton = document::skeleton(vec![pieces.tag.clone()], &self.executor_url, "");
            let slice = |(key, range): &'s (String, Range<usize>)| -> (&'s str, &'s [u8]) {
                (key.as_str(), &self.json.bytes[range.clone()])
            };
            let paths: Vec<(&str, &[u8])> = pieces
                .paths
                .iter()
                .map(|&i| slice(&self.paths[i]))
                .collect();
            let schemas: Vec<(&str, &[u8])> = pieces
                .schemas
                .iter()
                .map(|&i| slice(&self.schemas[i]))
                .collect();
            let (bytes, _) = assemble_document(&skeleton, pieces.revision, &schemas, &paths);
            Rendered::new(bytes)
        }))
    }

    /// The YAML rendering. Made on first use, on the blocking pool: for
    /// thousands of tools it takes longer than a rebuild, and only
    /// `/openapi.yaml` and the file and S3 push targets need it. Callers
    /// that come while it is being made wait for it rather than make it
    /// again.
    pub async fn yaml(self: &Arc<Self>) -> Result<&Rendered, CoreError> {
        self.yaml
            .get_or_try_init(|| async {
                let published = Arc::clone(self);
                let yaml = tokio::task::spawn_blocking(move || yaml_of(&published.json.bytes))
                    .await
                    .map_err(|e| CoreError::Internal(format!("YAML rendering failed: {e}")))??;
                Ok(Rendered::new(yaml))
            })
            .await
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

/// Where the pieces go in both documents.
const PATHS_AT: &[&str] = &["paths"];
const SCHEMAS_AT: &[&str] = &["components", "schemas"];

/// One rendered member of `paths` or `components/schemas`.
struct Piece {
    key: String,
    bytes: Vec<u8>,
    /// The service it belongs to; none for the error body's schema, which
    /// every document has.
    owner: Option<usize>,
}

/// Every tool translated and rendered, before the document has a version.
pub struct Prepared {
    /// The document's hash, the version number aside: compared with the
    /// latest version's to tell whether it is new.
    pub hash: String,
    /// The 3.1 document without paths and component schemas.
    skeleton: Value,
    /// The API Gateway flavour's, likewise.
    aws_skeleton: Value,
    /// In key order, each key once.
    paths: Vec<Piece>,
    schemas: Vec<Piece>,
    /// The API Gateway flavour's path items, in the order of `paths`.
    aws_paths: Vec<Vec<u8>>,
    /// The API Gateway flavour's models, in name order.
    models: Members,
    /// Per service: its name and revision, and its document when it must
    /// be built alone (`ServiceTree::renamed`).
    services: Vec<(String, i64, Option<Vec<u8>>)>,
    executor_url: String,
}

/// Translates every tool of `services` and renders each one's path item
/// and schemas, in both flavours (`pieces::translate`); puts the pieces
/// in key order and hashes them.
pub fn prepare(
    services: &[ServiceRecord],
    executor_url: &str,
    authorizer: Option<&ApiGatewayAuthorizer>,
) -> Prepared {
    let translated = pieces::translate(services, executor_url, authorizer);
    assemble(services, translated, executor_url)
}

/// The pieces of every part in key order, and the document's hash.
fn assemble(
    services: &[ServiceRecord],
    translated: Translated<'_>,
    executor_url: &str,
) -> Prepared {
    let Translated {
        parts,
        flavour,
        shared,
    } = translated;
    let mut paths = Vec::new();
    let mut aws_paths = Vec::new();
    let mut schemas: Vec<Piece> = shared
        .schemas
        .iter()
        .map(|(name, schema)| Piece {
            key: name.clone(),
            bytes: pretty::render_at(3, schema),
            owner: None,
        })
        .collect();
    let mut models: Members = shared
        .models
        .iter()
        .map(|(name, model)| (name.clone(), pretty::render_at(3, model)))
        .collect();
    let mut tags = Vec::with_capacity(parts.len());
    let mut service_list = Vec::with_capacity(parts.len());
    for (index, (part, record)) in parts.into_iter().zip(services).enumerate() {
        for (key, bytes, aws_bytes) in part.paths {
            paths.push(Piece {
                key,
                bytes,
                owner: Some(index),
            });
            aws_paths.push(aws_bytes);
        }
        schemas.extend(part.schemas.into_iter().map(|(key, bytes)| Piece {
            key,
            bytes,
            owner: Some(index),
        }));
        models.extend(part.models);
        tags.push(part.tag);
        let alone = part.renamed.then(|| {
            let mut alone = document::build(std::slice::from_ref(record), executor_url);
            alone["info"]["version"] = Value::String(record.service.revision.to_string());
            pretty::render_at(0, &alone)
        });
        service_list.push((record.service.name.clone(), record.service.revision, alone));
    }
    let (paths, aws_paths) = in_key_order(paths, aws_paths);
    schemas.sort_by(|a, b| a.key.cmp(&b.key));
    models.sort_by(|a, b| a.0.cmp(&b.0));

    let skeleton = document::skeleton(tags, executor_url, "");
    let aws_skeleton = serde_json::to_value(flavour.root(
        &skeleton["info"],
        skeleton.get("tags"),
        Part::Owned(json!({})),
        Part::Owned(json!({})),
    ))
    .unwrap_or_default();
    // Everything but the version number, which is not known yet.
    let mut hasher = Sha256::new();
    hasher.update(pretty::render_at(0, &skeleton));
    for piece in paths.iter().chain(&schemas) {
        hasher.update(piece.key.as_bytes());
        hasher.update([0]);
        hasher.update(&piece.bytes);
        hasher.update([0]);
    }
    Prepared {
        hash: hex::encode(hasher.finalize()),
        skeleton,
        aws_skeleton,
        paths,
        schemas,
        aws_paths,
        models,
        services: service_list,
        executor_url: executor_url.to_owned(),
    }
}
/// Paths in key order, each once: where two services have the same path,
/// the later one's, as in a tree where it was inserted last.
fn in_key_order(paths: Vec<Piece>, aws_paths: Vec<Vec<u8>>) -> (Vec<Piece>, Vec<Vec<u8>>) {
    let mut pairs: Vec<(Piece, Vec<u8>)> = paths.into_iter().zip(aws_paths).collect();
    // Stable: equal keys stay in the order they were made.
    pairs.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    let mut kept: Vec<(Piece, Vec<u8>)> = Vec::with_capacity(pairs.len());
    for pair in pairs {
        match kept.last_mut() {
            Some(last) if last.0.key == pair.0.key => *last = pair,
            _ => kept.push(pair),
        }
    }
    kept.into_iter().unzip()
}

impl Prepared {
    /// How many paths (tools) the document has.
    pub fn path_count(&self) -> usize {
        self.paths.len()
    }

    /// The 3.1 document as version `version`.
    pub fn json(&self, version: i64) -> Vec<u8> {
        self.assemble_json(version).0
    }

    /// The 3.1 document, and where its component schemas and paths landed.
    fn assemble_json(&self, version: i64) -> (Vec<u8>, Vec<Vec<Range<usize>>>) {
        assemble_document(
            &self.skeleton,
            version,
            &members(self.schemas.iter().map(|p| (p.key.as_str(), &p.bytes))),
            &members(self.paths.iter().map(|p| (p.key.as_str(), &p.bytes))),
        )
    }

    fn assemble_aws(&self, version: i64) -> Vec<u8> {
        let paths = self
            .paths
            .iter()
            .map(|p| p.key.as_str())
            .zip(&self.aws_paths);
        let models = self
            .models
            .iter()
            .map(|(name, bytes)| (name.as_str(), bytes));
        assemble_document(
            &self.aws_skeleton,
            version,
            &members(models),
            &members(paths),
        )
        .0
    }
}

/// `skeleton` as version `version`, with `schemas` in its
/// `components/schemas` and `paths` in its `paths`; where each landed.
fn assemble_document(
    skeleton: &Value,
    version: i64,
    schemas: &[(&str, &[u8])],
    paths: &[(&str, &[u8])],
) -> (Vec<u8>, Vec<Vec<Range<usize>>>) {
    let mut skeleton = skeleton.clone();
    skeleton["info"]["version"] = Value::String(version.to_string());
    let size: usize = schemas
        .iter()
        .chain(paths)
        .map(|(key, bytes)| key.len() + bytes.len() + 16)
        .sum();
    let mut out = Vec::with_capacity(size + 64 * 1024);
    let landed = pretty::write_spliced(
        &mut out,
        0,
        skeleton.as_object().unwrap_or(&Map::new()),
        &[
            Splice {
                at: SCHEMAS_AT,
                members: schemas,
            },
            Splice {
                at: PATHS_AT,
                members: paths,
            },
        ],
    );
    (out, landed)
}

fn members<'p>(pieces: impl Iterator<Item = (&'p str, &'p Vec<u8>)>) -> Vec<(&'p str, &'p [u8])> {
    pieces.map(|(key, bytes)| (key, bytes.as_slice())).collect()
}

/// Every rendering of `prepared` as version `version`: JSON, the API Gateway
/// flavour, and what each service's document is assembled from; YAML and
/// the services' documents wait until asked for.
pub fn render(version: i64, prepared: Prepared) -> Published {
    let (json, landed) = prepared.assemble_json(version);
    let aws = prepared.assemble_aws(version);
    let mut landed = landed.into_iter();
    let schema_ranges = landed.next().unwrap_or_default();
    let path_ranges = landed.next().unwrap_or_default();
    let mut paths_of = vec![Vec::new(); prepared.services.len()];
    for (index, piece) in prepared.paths.iter().enumerate() {
        if let Some(paths) = piece.owner.and_then(|owner| paths_of.get_mut(owner)) {
            paths.push(index);
        }
    }
    let mut schemas_of = vec![Vec::new(); prepared.services.len()];
    for (index, piece) in prepared.schemas.iter().enumerate() {
        match piece.owner {
            Some(owner) => {
                if let Some(schemas) = schemas_of.get_mut(owner) {
                    schemas.push(index);
                }
            }
            None => schemas_of.iter_mut().for_each(|s| s.push(index)),
        }
    }
    let keyed = |pieces: &[Piece], ranges: Vec<Range<usize>>| {
        pieces
            .iter()
            .map(|p| p.key.clone())
            .zip(ranges)
            .collect::<Vec<_>>()
    };
    let services = prepared
        .services
        .into_iter()
        .zip(paths_of.into_iter().zip(schemas_of))
        .enumerate()
        .map(|(index, ((name, revision, alone), (paths, schemas)))| {
            let document = ServiceDocument {
                made: alone
                    .map_or_else(OnceLock::new, |bytes| OnceLock::from(Rendered::new(bytes))),
                pieces: ServicePieces {
                    tag: prepared.skeleton["tags"][index].clone(),
                    revision,
                    paths,
                    schemas,
                },
            };
            (name, document)
        })
        .collect();
    Published {
        version,
        json: Rendered::new(json),
        yaml: tokio::sync::OnceCell::new(),
        aws: Rendered::new(aws),
        paths: keyed(&prepared.paths, path_ranges),
        schemas: keyed(&prepared.schemas, schema_ranges),
        services,
        executor_url: prepared.executor_url,
    }
}

fn internal(e: impl std::fmt::Display) -> CoreError {
    CoreError::Internal(e.to_string())
}
