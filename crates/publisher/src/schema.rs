//! Translates a tool's JSON Schema into the OpenAPI 3.1 document.
//!
//! A tool's schema is a JSON document of its own: its `$ref`s (`#/$defs/X`,
//! `#/definitions/X`, `#` for recursion, any JSON pointer, `$anchor`s,
//! `$id`s) resolve against it. Put inline in the OpenAPI document they would
//! resolve against the OpenAPI document instead and point at nothing. So:
//!
//! - every `$defs` / `definitions` entry (nested ones too), and every other
//!   location a `$ref` points to (the root itself for `#`), becomes an entry
//!   of `components/schemas` named `{prefix}_{path}` (the prefix is
//!   `{service}_{tool}`, the path the JSON pointer without its `$defs` /
//!   `definitions` segments, `Input` / `Output` for the root), every
//!   character outside `[A-Za-z0-9._-]` replaced by `_`, and `_2`, `_3`… added
//!   on a clash, in a fixed order (so names are stable across rebuilds);
//! - every `$ref` (and `$dynamicRef` / `$recursiveRef`, resolved statically)
//!   becomes `#/components/schemas/{name}`; where the pointed schema also sits
//!   in place (a property, an item), it is replaced by the same `$ref`;
//! - `$schema`, `$id`, `$anchor`, `$dynamicAnchor` and `$recursiveAnchor` are
//!   dropped: once every reference is rewritten they say nothing, and a `$id`
//!   left in place would change what the rewritten references resolve to;
//! - older dialects (`$schema` draft-04, -06, -07, 2019-09) are rewritten into
//!   2020-12, the dialect of OpenAPI 3.1: tuple `items` / `additionalItems`
//!   become `prefixItems` / `items`, `dependencies` splits into
//!   `dependentRequired` / `dependentSchemas`, boolean `exclusiveMinimum` /
//!   `exclusiveMaximum` take the bound's value, and the siblings of a `$ref`,
//!   which those drafts ignore, are dropped (annotations kept);
//! - a `$ref` that cannot be resolved inside the schema (an external URL, a
//!   pointer to nothing) is removed, its text kept as `x-mcp-unresolved-ref`:
//!   the executor cannot compile such a schema either and leaves the
//!   arguments to the server, so "no constraint" is what the document says.
//!
//! Everything else (`anyOf`, `oneOf`, `const`, type arrays with `"null"`,
//! `additionalProperties`, `format`…) is kept as it is. One difference
//! remains: drafts up to 07 make `format` an assertion and 2020-12 an
//! annotation, so for such schemas the executor checks formats that the
//! document only names.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Map, Value};
use url::Url;

/// What a schema without `$id` is known as while resolving its references.
const DEFAULT_BASE: &str = "https://tool-schema.mcpo.invalid/schema.json";

/// Keywords whose value is one schema.
const SCHEMA_KEYWORDS: &[&str] = &[
    "additionalProperties",
    "additionalItems",
    "contains",
    "propertyNames",
    "if",
    "then",
    "else",
    "not",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
    "items",
];
/// Keywords whose value is an array of schemas.
const SCHEMA_ARRAY_KEYWORDS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems", "items"];
/// Keywords whose value maps names to schemas.
const SCHEMA_MAP_KEYWORDS: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
    "dependencies",
];
/// Keywords that only annotate: kept beside a legacy `$ref`.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
];
const REFERENCES: &[&str] = &["$ref", "$dynamicRef", "$recursiveRef"];

pub const COMPONENT_PREFIX: &str = "#/components/schemas/";

type Path = Vec<String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Dialect {
    Draft4,
    Draft6,
    Draft7,
    Draft2019,
    Draft2020,
}

impl Dialect {
    fn of(schema: &Value) -> Dialect {
        let declared = schema.get("$schema").and_then(Value::as_str).unwrap_or("");
        if declared.contains("draft-04") {
            Dialect::Draft4
        } else if declared.contains("draft-06") {
            Dialect::Draft6
        } else if declared.contains("draft-07") {
            Dialect::Draft7
        } else if declared.contains("2019-09") {
            Dialect::Draft2019
        } else {
            Dialect::Draft2020
        }
    }

    /// Drafts that ignore the siblings of `$ref`.
    fn ref_overrides(self) -> bool {
        self <= Dialect::Draft7
    }
}

/// The `components/schemas` of one document, filled tool by tool.
#[derive(Debug, Default)]
pub struct Components {
    schemas: Map<String, Value>,
    /// Who claimed each name: an owner's index (a service's), `None` for the
    /// document's own schemas.
    owners: HashMap<String, Option<usize>>,
    /// Whom names are claimed for now.
    owner: Option<usize>,
    /// Owners that found a name taken by another owner, and so got a name
    /// (`_2`…) they would not get in a document without that owner.
    renamed: BTreeSet<usize>,
}

impl Components {
    pub fn new() -> Components {
        Components::default()
    }

    /// Adds a schema of the document's own (the error body).
    pub fn insert(&mut self, name: &str, schema: Value) {
        self.owners.insert(name.to_owned(), None);
        self.schemas.insert(name.to_owned(), schema);
    }

    /// Takes `name` for `owner` (`None`: the document's own) as it is.
    pub fn reserve(&mut self, name: &str, owner: Option<usize>) {
        self.owners.insert(name.to_owned(), owner);
    }

    pub fn is_taken(&self, name: &str) -> bool {
        self.owners.contains_key(name)
    }

    /// Names are claimed for `owner` from now on.
    pub fn claim_for(&mut self, owner: usize) {
        self.owner = Some(owner);
    }

    /// Whether `owner` got a name another owner's made it change.
    pub fn renamed(&self, owner: usize) -> bool {
        self.renamed.contains(&owner)
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.schemas.get(name)
    }

    /// The schemas added since the last call: names stay claimed.
    pub fn take_schemas(&mut self) -> Map<String, Value> {
        std::mem::take(&mut self.schemas)
    }

    /// Translates one tool schema: its definitions and referenced parts go
    /// into the components, and what is returned goes where the schema is
    /// used (inline, or a `$ref` to the root when the root is referenced).
    /// `prefix` starts the names of its components, `root_name` ends the
    /// root's (`Input`, `Output`).
    pub fn translate(&mut self, prefix: &str, root_name: &str, schema: &Value) -> Value {
        if plain(schema, true) {
            // Most tool schemas: nothing to lift, rewrite or drop but the
            // dialect.
            let mut copy = schema.clone();
            if let Some(map) = copy.as_object_mut() {
                map.remove("$schema");
            }
            return copy;
        }
        let index = Index::build(schema);
        let targets = index.targets();
        let mut names = HashMap::with_capacity(targets.len());
        for target in &targets {
            let name = self.claim(&format!("{prefix}_{}", local_name(target, root_name)));
            names.insert(target.clone(), name);
        }
        let emitter = Emitter {
            index: &index,
            names: &names,
        };
        for target in &targets {
            let Some(node) = value_at(schema, target) else {
                continue;
            };
            let mut path = target.clone();
            let translated = emitter.emit(node, &mut path, &index.base_at(target));
            self.schemas.insert(names[target].clone(), translated);
        }
        match names.get(&Vec::new()) {
            Some(root) => component_ref(root),
            None => emitter.emit(schema, &mut Vec::new(), &index.root_base),
        }
    }

    /// A free name: `base` sanitized, with `_2`, `_3`… on a clash. Reserved
    /// at once, so names given to one schema do not clash either.
    fn claim(&mut self, base: &str) -> String {
        let base = sanitize(base);
        let mut name = base.clone();
        let mut n = 2;
        while let Some(taken_by) = self.owners.get(&name) {
            if let (Some(owner), Some(other)) = (self.owner, *taken_by) {
                if other != owner {
                    self.renamed.insert(owner);
                }
            }
            name = format!("{base}_{n}");
            n += 1;
        }
        self.owners.insert(name.clone(), self.owner);
        self.schemas.insert(name.clone(), Value::Null);
        name
    }
}

/// Whether translating `value` would only drop the root's `$schema`: no key
/// anywhere (values of `enum`, `default`… included, to keep this quick) is
/// one the translation acts on.
fn plain(value: &Value, root: bool) -> bool {
    match value {
        Value::Object(map) => map.iter().all(|(key, child)| {
            let acted_on = match key.as_str() {
                "$schema" => !root,
                "definitions" | "additionalItems" | "dependencies" => true,
                "exclusiveMinimum" | "exclusiveMaximum" => child.is_boolean(),
                "items" => child.is_array(),
                key => key.starts_with('$'),
            };
            !acted_on && plain(child, false)
        }),
        Value::Array(items) => items.iter().all(|item| plain(item, false)),
        _ => true,
    }
}

pub fn component_ref(name: &str) -> Value {
    json!({ "$ref": format!("{COMPONENT_PREFIX}{name}") })
}

/// Component names may only use `[A-Za-z0-9._-]`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn local_name(path: &Path, root_name: &str) -> String {
    if path.is_empty() {
        return root_name.to_owned();
    }
    let parts: Vec<&str> = path
        .iter()
        .map(String::as_str)
        .filter(|t| !matches!(*t, "$defs" | "definitions"))
        .collect();
    if parts.is_empty() {
        "defs".to_owned()
    } else {
        parts.join("_")
    }
}

/// What the references of one schema can point to.
struct Index<'a> {
    root: &'a Value,
    dialect: Dialect,
    root_base: Url,
    /// Each resource (the root, and each subschema with a `$id`), by its
    /// absolute URI without fragment.
    resources: HashMap<String, Path>,
    /// Each `$anchor` (and legacy `$id: "#name"`), as `{resource}#{name}`.
    anchors: HashMap<String, Path>,
}

impl<'a> Index<'a> {
    fn build(root: &'a Value) -> Index<'a> {
        let default = Url::parse(DEFAULT_BASE).expect("the default base is a URL");
        let dialect = Dialect::of(root);
        let mut index = Index {
            root,
            dialect,
            root_base: default.clone(),
            resources: HashMap::new(),
            anchors: HashMap::new(),
        };
        index.root_base = index.rebase(&default, root).into_owned();
        index
            .resources
            .insert(index.root_base.to_string(), Vec::new());
        let base = index.root_base.clone();
        index.scan(root, &mut Vec::new(), &base);
        index
    }

    /// The base URI inside `node`: its `$id` resolved against `base`.
    fn rebase<'u>(&self, base: &'u Url, node: &Value) -> Cow<'u, Url> {
        let Some(id) = node.get("$id").and_then(Value::as_str) else {
            return Cow::Borrowed(base);
        };
        if id.starts_with('#') {
            return Cow::Borrowed(base);
        }
        match base.join(id) {
            Ok(mut url) => {
                url.set_fragment(None);
                Cow::Owned(url)
            }
            Err(_) => Cow::Borrowed(base),
        }
    }

    fn scan(&mut self, node: &Value, path: &mut Path, base: &Url) {
        let Some(map) = node.as_object() else {
            return;
        };
        let base = self.rebase(base, node);
        if map.contains_key("$id") && !path.is_empty() {
            self.resources
                .entry(base.to_string())
                .or_insert_with(|| path.clone());
        }
        let legacy_anchor = map
            .get("$id")
            .and_then(Value::as_str)
            .and_then(|id| id.strip_prefix('#'));
        for anchor in [
            map.get("$anchor").and_then(Value::as_str),
            map.get("$dynamicAnchor").and_then(Value::as_str),
            legacy_anchor,
        ]
        .into_iter()
        .flatten()
        {
            self.anchors
                .entry(format!("{base}#{anchor}"))
                .or_insert_with(|| path.clone());
        }
        for_each_subschema(map, |keys, child| {
            let depth = path.len();
            path.extend(keys.iter().map(|k| (*k).to_owned()));
            self.scan(child, path, &base);
            path.truncate(depth);
        });
    }

    /// The base URI at `path`: every `$id` on the way applied.
    fn base_at(&self, path: &Path) -> Url {
        let mut base = self.root_base.clone();
        let mut node = self.root;
        for token in path {
            match step(node, token) {
                Some(next) => node = next,
                None => break,
            }
            let next = self.rebase(&base, node).into_owned();
            base = next;
        }
        base
    }

    /// Where `reference` (seen under `base`) points, if inside the schema
    /// and at something that can be a schema.
    fn resolve(&self, base: &Url, reference: &str) -> Option<Path> {
        let mut target = base.join(reference).ok()?;
        let fragment = percent_decode(target.fragment().unwrap_or(""));
        target.set_fragment(None);
        let resource = self.resources.get(target.as_str())?;
        let path = if fragment.is_empty() {
            resource.clone()
        } else if let Some(pointer) = fragment.strip_prefix('/') {
            let mut path = resource.clone();
            path.extend(
                pointer
                    .split('/')
                    .map(|t| t.replace("~1", "/").replace("~0", "~")),
            );
            path
        } else {
            self.anchors.get(&format!("{target}#{fragment}"))?.clone()
        };
        match value_at(self.root, &path) {
            Some(Value::Object(_) | Value::Bool(_)) => Some(path),
            _ => None,
        }
    }

    /// Every location to lift: each definition and each referenced one,
    /// including those only reachable from another lifted location.
    fn targets(&self) -> BTreeSet<Path> {
        let mut targets = BTreeSet::new();
        self.collect(self.root, &mut Vec::new(), &self.root_base, &mut targets);
        // A reference may point outside the places the walk visits (under an
        // unknown keyword): walk those too, until nothing new turns up.
        let mut walked: BTreeSet<Path> = BTreeSet::new();
        loop {
            let pending: Vec<Path> = targets
                .iter()
                .filter(|t| !walked.contains(*t) && !self.is_schema_position(t))
                .cloned()
                .collect();
            if pending.is_empty() {
                return targets;
            }
            for path in pending {
                if let Some(node) = value_at(self.root, &path) {
                    let base = self.base_at(&path);
                    self.collect(node, &mut path.clone(), &base, &mut targets);
                }
                walked.insert(path);
            }
        }
    }

    fn collect(&self, node: &Value, path: &mut Path, base: &Url, targets: &mut BTreeSet<Path>) {
        let Some(map) = node.as_object() else {
            return;
        };
        let base = self.rebase(base, node);
        for keyword in REFERENCES {
            if let Some(reference) = map.get(*keyword).and_then(Value::as_str) {
                if let Some(target) = self.resolve(&base, reference) {
                    targets.insert(target);
                }
            }
        }
        for keyword in ["$defs", "definitions"] {
            if let Some(defs) = map.get(keyword).and_then(Value::as_object) {
                for (name, definition) in defs {
                    if !(definition.is_object() || definition.is_boolean()) {
                        continue;
                    }
                    let mut target = path.clone();
                    target.push(keyword.to_owned());
                    target.push(name.clone());
                    targets.insert(target);
                }
            }
        }
        for_each_subschema(map, |keys, child| {
            let depth = path.len();
            path.extend(keys.iter().map(|k| (*k).to_owned()));
            self.collect(child, path, &base, targets);
            path.truncate(depth);
        });
    }

    /// Whether the walk from the root reaches `path` (through keywords that
    /// hold schemas).
    fn is_schema_position(&self, path: &Path) -> bool {
        let mut node = self.root;
        let mut tokens = path.iter();
        while let Some(keyword) = tokens.next() {
            let Some(value) = node.get(keyword.as_str()) else {
                return false;
            };
            let keyword = keyword.as_str();
            node = if SCHEMA_ARRAY_KEYWORDS.contains(&keyword) && value.is_array()
                || SCHEMA_MAP_KEYWORDS.contains(&keyword) && value.is_object()
            {
                match tokens.next().and_then(|t| step(value, t)) {
                    Some(child) => child,
                    None => return false,
                }
            } else if SCHEMA_KEYWORDS.contains(&keyword) {
                value
            } else {
                return false;
            };
        }
        true
    }
}

/// Calls `f` with each subschema of a schema object and the keys leading to
/// it (one or two).
fn for_each_subschema<'v>(map: &'v Map<String, Value>, mut f: impl FnMut(&[&str], &'v Value)) {
    for (key, value) in map {
        let key = key.as_str();
        match value {
            Value::Array(items) if SCHEMA_ARRAY_KEYWORDS.contains(&key) => {
                let indices: Vec<String> = (0..items.len()).map(|i| i.to_string()).collect();
                for (i, item) in items.iter().enumerate() {
                    f(&[key, indices[i].as_str()], item);
                }
            }
            Value::Object(entries) if SCHEMA_MAP_KEYWORDS.contains(&key) => {
                for (name, child) in entries {
                    // `dependencies` also maps to arrays of names.
                    if child.is_object() || child.is_boolean() {
                        f(&[key, name.as_str()], child);
                    }
                }
            }
            Value::Object(_) | Value::Bool(_) if SCHEMA_KEYWORDS.contains(&key) => f(&[key], value),
            _ => {}
        }
    }
}

/// Writes the translated schemas.
struct Emitter<'a> {
    index: &'a Index<'a>,
    names: &'a HashMap<Path, String>,
}

impl Emitter<'_> {
    /// `node` (at `path`) translated; its subschemas that are lifted become
    /// references.
    fn emit(&self, node: &Value, path: &mut Path, base: &Url) -> Value {
        let Some(map) = node.as_object() else {
            return node.clone();
        };
        let dialect = self.index.dialect;
        let base = self.index.rebase(base, node);
        let legacy_ref = dialect.ref_overrides() && map.get("$ref").is_some_and(Value::is_string);
        let tuple_items =
            dialect <= Dialect::Draft2019 && map.get("items").is_some_and(Value::is_array);
        let mut out = Map::new();
        let mut refs = Vec::new();
        for keyword in REFERENCES {
            let Some(reference) = map.get(*keyword).and_then(Value::as_str) else {
                continue;
            };
            let name = self
                .index
                .resolve(&base, reference)
                .and_then(|target| self.names.get(&target));
            match name {
                Some(name) => refs.push(component_ref(name)),
                None => {
                    out.insert("x-mcp-unresolved-ref".into(), json!(reference));
                }
            }
        }
        for (key, value) in map {
            let key = key.as_str();
            if REFERENCES.contains(&key) {
                continue;
            }
            if legacy_ref && !ANNOTATIONS.contains(&key) && !key.starts_with("x-") {
                continue;
            }
            match key {
                "$schema" | "$id" | "$anchor" | "$dynamicAnchor" | "$recursiveAnchor"
                | "$vocabulary" | "$defs" | "definitions" => {}
                "items" if tuple_items => {
                    out.insert("prefixItems".into(), self.children(value, path, key, &base));
                }
                "additionalItems" => {
                    // Means something only beside tuple `items` (before 2020-12).
                    if tuple_items {
                        out.insert("items".into(), self.child(value, path, &[key], &base));
                    }
                }
                "dependencies" if value.is_object() => {
                    let mut required = Map::new();
                    let mut schemas = Map::new();
                    for (name, dependency) in value.as_object().into_iter().flatten() {
                        if dependency.is_array() {
                            required.insert(name.clone(), dependency.clone());
                        } else {
                            schemas.insert(
                                name.clone(),
                                self.child(dependency, path, &[key, name], &base),
                            );
                        }
                    }
                    if !required.is_empty() {
                        out.insert("dependentRequired".into(), Value::Object(required));
                    }
                    if !schemas.is_empty() {
                        out.insert("dependentSchemas".into(), Value::Object(schemas));
                    }
                }
                "exclusiveMaximum" | "exclusiveMinimum" if value.is_boolean() => {
                    let bound = if key == "exclusiveMaximum" {
                        "maximum"
                    } else {
                        "minimum"
                    };
                    if let (Some(true), Some(limit)) = (value.as_bool(), map.get(bound)) {
                        out.insert(key.into(), limit.clone());
                    }
                }
                "maximum" | "minimum"
                    if map
                        .get(&format!(
                            "exclusive{}{}",
                            &key[..1].to_uppercase(),
                            &key[1..]
                        ))
                        .and_then(Value::as_bool)
                        == Some(true) => {}
                _ if SCHEMA_ARRAY_KEYWORDS.contains(&key) && value.is_array() => {
                    out.insert(key.into(), self.children(value, path, key, &base));
                }
                _ if SCHEMA_MAP_KEYWORDS.contains(&key) && value.is_object() => {
                    let mut entries = Map::new();
                    for (name, child) in value.as_object().into_iter().flatten() {
                        entries.insert(name.clone(), self.child(child, path, &[key, name], &base));
                    }
                    out.insert(key.into(), Value::Object(entries));
                }
                _ if SCHEMA_KEYWORDS.contains(&key)
                    && (value.is_object() || value.is_boolean()) =>
                {
                    out.insert(key.into(), self.child(value, path, &[key], &base));
                }
                _ => {
                    out.insert(key.into(), value.clone());
                }
            }
        }
        let mut refs = refs.into_iter();
        if let Some(first) = refs.next() {
            out.insert("$ref".into(), first["$ref"].clone());
        }
        // Several references in one object all apply.
        let more: Vec<Value> = refs.collect();
        if !more.is_empty() {
            let all = out
                .entry("allOf")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Some(all) = all.as_array_mut() {
                all.extend(more);
            }
        }
        Value::Object(out)
    }

    fn children(&self, value: &Value, path: &mut Path, key: &str, base: &Url) -> Value {
        let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
        Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| self.child(item, path, &[key, &i.to_string()], base))
                .collect(),
        )
    }

    /// A subschema: a reference when it is lifted, else translated in place.
    fn child(&self, value: &Value, path: &mut Path, keys: &[&str], base: &Url) -> Value {
        let depth = path.len();
        path.extend(keys.iter().map(|k| (*k).to_owned()));
        let lifted = if self.names.is_empty() {
            None
        } else {
            self.names.get(path)
        };
        let translated = match lifted {
            Some(name) => component_ref(name),
            None => self.emit(value, path, base),
        };
        path.truncate(depth);
        translated
    }
}

fn step<'v>(node: &'v Value, token: &str) -> Option<&'v Value> {
    match node {
        Value::Object(map) => map.get(token),
        Value::Array(items) => items.get(token.parse::<usize>().ok()?),
        _ => None,
    }
}

fn value_at<'v>(root: &'v Value, path: &Path) -> Option<&'v Value> {
    path.iter().try_fold(root, |node, token| step(node, token))
}

/// `%XX` sequences decoded (JSON pointers in URI fragments are
/// percent-encoded); anything else kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
