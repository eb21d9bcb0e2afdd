//! The pieces a rebuild assembles its documents from: each service's
//! tools translated ([`document::service_tree`]) and rendered, path items
//! and schemas in the 3.1 flavour and models and path items in API
//! Gateway's, at the depth each takes in a document ([`pretty`]).

use mcpo_core::config::ApiGatewayAuthorizer;
use mcpo_core::db::queries::ServiceRecord;
use serde_json::{Map, Value};

use crate::aws::{self, Flavour, ModelNames};
use crate::document::{self, Names};
use crate::pretty;

/// Rendered members of an object: keys and values.
pub(crate) type Members = Vec<(String, Vec<u8>)>;

/// Every service's part, translated and rendered, with what they share.
pub(crate) struct Translated<'a> {
    /// In the order of the services.
    pub parts: Vec<ServicePart>,
    pub flavour: Flavour<'a>,
    pub shared: Shared,
}

/// Translates every tool of `services` and renders each one's path item
/// and schemas, in both flavours. Services are translated on every core,
/// each as if alone in the document; then, in order, a service that another
/// took one of its names from is translated again with the names left to
/// it, and one whose models got other names in the whole document has its
/// API Gateway pieces made again: the result is the sequential
/// translation's ([`document::build`]).
pub(crate) fn translate<'a>(
    services: &[ServiceRecord],
    executor_url: &'a str,
    authorizer: Option<&'a ApiGatewayAuthorizer>,
) -> Translated<'a> {
    let responses = document::skeleton(Vec::new(), executor_url, "");
    let responses = responses
        .pointer("/components/responses")
        .and_then(Value::as_object);
    let shared_names = aws::model_names(document::shared_schemas().keys().map(String::as_str));
    let flavour = Flavour::new(&shared_names, responses, executor_url, authorizer);
    let shared = Shared::new(&flavour, shared_names);
    let mut parts = in_parallel(services, |index, record| {
        part_of(record, index, &mut Names::new(), &flavour, &shared)
    });

    let mut names = Names::new();
    for (index, part) in parts.iter_mut().enumerate() {
        if names.clash(&part.schema_names, &part.operation_ids) {
            *part = part_of(&services[index], index, &mut names, &flavour, &shared);
        } else {
            names.take(&part.schema_names, &part.operation_ids, index);
        }
    }
    let shared_paths = document::shared_paths(
        parts
            .iter()
            .map(|p| p.paths.iter().map(|(k, _, _)| k.as_str())),
    );
    for (part, shared) in parts.iter_mut().zip(shared_paths) {
        part.renamed |= shared;
    }

    let mut all_names: Vec<&str> = shared
        .schemas
        .keys()
        .chain(parts.iter().flat_map(|p| &p.schema_names))
        .map(String::as_str)
        .collect();
    all_names.sort_unstable();
    let model_names = aws::model_names(all_names);
    let agree = |names: &ModelNames| names.iter().all(|(c, m)| model_names.get(c) == Some(m));
    let whole = if agree(&shared.model_names) {
        None
    } else {
        let flavour = Flavour::new(&model_names, responses, executor_url, authorizer);
        let shared = Shared::new(&flavour, model_names.clone());
        Some((flavour, shared))
    };
    for part in &mut parts {
        if whole.is_some() || !agree(&part.model_names) {
            let (flavour, shared) = whole.as_ref().map_or((&flavour, &shared), |(f, s)| (f, s));
            convert_again(part, flavour, shared, &model_names);
        }
    }
    let (flavour, shared) = whole.unwrap_or((flavour, shared));
    Translated {
        parts,
        flavour,
        shared,
    }
}

/// One service's part of the document, translated as if the service were
/// alone in it, and rendered in both flavours.
pub(crate) struct ServicePart {
    pub tag: Value,
    /// The names it took (component schemas, `operationId`s): another
    /// service may have taken one before it in the platform document.
    pub schema_names: Vec<String>,
    pub operation_ids: Vec<String>,
    pub renamed: bool,
    /// The model names its API Gateway pieces use: model names depend on
    /// every component name of the document.
    pub model_names: ModelNames,
    /// Each path, its 3.1 path item and its API Gateway one.
    pub paths: Vec<(String, Vec<u8>, Vec<u8>)>,
    pub schemas: Members,
    pub models: Members,
}

/// What every service's part refers to: the shared component schemas, as
/// they are and as models.
pub(crate) struct Shared {
    pub schemas: Map<String, Value>,
    pub model_names: ModelNames,
    pub models: Map<String, Value>,
}

impl Shared {
    fn new(flavour: &Flavour<'_>, model_names: ModelNames) -> Shared {
        let schemas = document::shared_schemas();
        let models = models_of(&schemas, flavour, &model_names);
        Shared {
            schemas,
            model_names,
            models,
        }
    }
}

/// Runs `f` on each service, on `available_parallelism` threads (services
/// in contiguous runs); results in the order of `services`.
fn in_parallel<T: Send>(
    services: &[ServiceRecord],
    f: impl Fn(usize, &ServiceRecord) -> T + Sync,
) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let run = services.len().div_ceil(threads).max(1);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = services
            .chunks(run)
            .enumerate()
            .map(|(chunk, records)| {
                scope.spawn(move || {
                    records
                        .iter()
                        .enumerate()
                        .map(|(i, record)| f(chunk * run + i, record))
                        .collect::<Vec<T>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e))
            })
            .collect()
    })
}

/// Service `index` translated with `names` and rendered; its trees are
/// dropped here, while they are still in cache.
fn part_of(
    record: &ServiceRecord,
    index: usize,
    names: &mut Names,
    flavour: &Flavour<'_>,
    shared: &Shared,
) -> ServicePart {
    let tree = document::service_tree(record, index, names);
    let mut all_names: Vec<&str> = shared
        .schemas
        .keys()
        .chain(tree.schemas.keys())
        .map(String::as_str)
        .collect();
    all_names.sort_unstable();
    let model_names = aws::model_names(all_names);
    let (aws_paths, models) = aws_pieces(&tree.paths, &tree.schemas, flavour, shared, &model_names);
    ServicePart {
        schema_names: tree.schemas.keys().cloned().collect(),
        schemas: tree
            .schemas
            .iter()
            .map(|(name, schema)| (name.clone(), pretty::render_at(3, schema)))
            .collect(),
        paths: tree
            .paths
            .iter()
            .zip(aws_paths)
            .map(|((path, item), aws)| (path.clone(), pretty::render_at(2, item), aws))
            .collect(),
        models,
        model_names: model_names
            .into_iter()
            .filter(|(name, _)| tree.schemas.contains_key(name))
            .collect(),
        tag: tree.tag,
        operation_ids: tree.operation_ids,
        renamed: tree.renamed,
    }
}

/// The API Gateway pieces of a service's paths and schemas: path items,
/// and models by model name.
fn aws_pieces(
    paths: &[(String, Value)],
    schemas: &Map<String, Value>,
    flavour: &Flavour<'_>,
    shared: &Shared,
    model_names: &ModelNames,
) -> (Vec<Vec<u8>>, Members) {
    let models = models_of(schemas, flavour, model_names);
    let lookup = |name: &str| models.get(name).or_else(|| shared.models.get(name));
    let paths = paths
        .iter()
        .map(|(path, item)| {
            pretty::render_at(2, &flavour.path_item(path, item, model_names, &lookup))
        })
        .collect();
    let models = models
        .iter()
        .map(|(name, model)| (name.clone(), pretty::render_at(3, model)))
        .collect();
    (paths, models)
}

fn models_of(
    schemas: &Map<String, Value>,
    flavour: &Flavour<'_>,
    model_names: &ModelNames,
) -> Map<String, Value> {
    schemas
        .iter()
        .map(|(name, schema)| {
            (
                aws::model_name(model_names, name).to_owned(),
                flavour.model(schema, model_names),
            )
        })
        .collect()
}

/// `part`'s API Gateway pieces made again with the document's model
/// names, from its 3.1 pieces (their trees are gone; JSON reads back into
/// the same tree).
fn convert_again(
    part: &mut ServicePart,
    flavour: &Flavour<'_>,
    shared: &Shared,
    names: &ModelNames,
) {
    let read = |bytes: &[u8]| serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let paths: Vec<(String, Value)> = part
        .paths
        .iter()
        .map(|(path, item, _)| (path.clone(), read(item)))
        .collect();
    let schemas: Map<String, Value> = part
        .schemas
        .iter()
        .map(|(name, schema)| (name.clone(), read(schema)))
        .collect();
    let (aws_paths, models) = aws_pieces(&paths, &schemas, flavour, shared, names);
    for (path, aws) in part.paths.iter_mut().zip(aws_paths) {
        path.2 = aws;
    }
    part.models = models;
}
