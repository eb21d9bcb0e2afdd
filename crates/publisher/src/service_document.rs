//! One service's own document (`/services/{name}/openapi.json`): what
//! [`document::build`] gives for the service alone, with the service's
//! revision as `info.version`. Taken from the platform document, which has
//! every part of it already translated, rather than translated again.

use mcpo_core::db::queries::ServiceRecord;
use serde_json::Value;

use crate::document::{self, Platform};
use crate::view::{Members, Part};

/// The service's document, rendered. `index` is the record's place in the
/// records `platform` was built from.
pub fn render(
    platform: &Platform,
    index: usize,
    record: &ServiceRecord,
    executor_url: &str,
) -> Result<Vec<u8>, serde_json::Error> {
    let version = Value::String(record.service.revision.to_string());
    let doc = platform.document.as_object();
    let tag = doc
        .and_then(|doc| doc.get("tags"))
        .and_then(|tags| tags.get(index));
    let parts = platform.services.get(index).filter(|parts| !parts.renamed);
    let (Some(doc), Some(tag), Some(parts)) = (doc, tag, parts) else {
        // A name differs from the platform document's: built alone.
        let mut alone = document::build(std::slice::from_ref(record), executor_url);
        alone["info"]["version"] = version;
        return serde_json::to_vec_pretty(&alone);
    };
    let mut own = Members::borrowing(doc);
    own.insert("tags", Part::Array(vec![Part::Value(tag)]));
    let all_paths = doc.get("paths").and_then(Value::as_object);
    let mut paths = Members::new();
    for path in &parts.paths {
        if let Some(item) = all_paths.and_then(|all| all.get(path)) {
            paths.insert(path.as_str(), Part::Value(item));
        }
    }
    own.insert("paths", paths.into());
    if let Some(components) = doc.get("components").and_then(Value::as_object) {
        let all_schemas = components.get("schemas").and_then(Value::as_object);
        let mut schemas = Members::new();
        for name in platform.shared_schemas.iter().chain(&parts.schemas) {
            if let Some(schema) = all_schemas.and_then(|all| all.get(name)) {
                schemas.insert(name.as_str(), Part::Value(schema));
            }
        }
        let mut own_components = Members::borrowing(components);
        own_components.insert("schemas", schemas.into());
        own.insert("components", own_components.into());
    }
    if let Some(info) = doc.get("info").and_then(Value::as_object) {
        let mut own_info = Members::borrowing(info);
        own_info.insert("version", Part::Owned(version));
        own.insert("info", own_info.into());
    }
    serde_json::to_vec_pretty(&Part::from(own))
}
