//! Property tests of the schema translation, on whole documents: many
//! generated tool schemas (recursive, nested definitions, references to the
//! root, definition names that clash across tools and services once
//! sanitized, draft-07 and 2020-12) go through `document::build`; then
//! - every `$ref` of the document (and of its API Gateway flavour) resolves;
//! - each operation's request and response schema accepts and rejects
//!   exactly the sample values the tool's own schema does;
//! - the API Gateway (3.0) schemas accept at least those values;
//! - building twice gives the same document.

#[path = "common/records.rs"]
mod records;

use std::sync::Arc;

use mcpo_publisher::{aws, document};
use proptest::prelude::*;
use records::{service, Tool};
use serde_json::{json, Map, Value};

/// Definition names: some need escaping in a pointer, some clash once
/// sanitized (`a b` / `a_b`), some differ only in case.
const DEFINITIONS: &[&str] = &["Node", "node", "a b", "a_b", "x~y", "p/q", "Item.v2"];
const PROPERTIES: &[&str] = &["a", "b", "label", "children", "$ref"];
const STRINGS: &[&str] = &["", "a", "ab", "Node", "xyz"];
/// Service and tool names that clash once made component names.
const SERVICES: &[&str] = &["fx", "fx.b", "fx_b", "web"];
const TOOLS: &[&str] = &["tree", "tree.v2", "tree_v2", "a"];

#[derive(Debug, Clone, Copy)]
enum Dialect {
    Draft7,
    Draft2020,
}

/// What a generated schema's references may point to.
#[derive(Debug, Clone)]
struct Shape {
    dialect: Dialect,
    definitions: Vec<&'static str>,
    nested: bool,
}

impl Shape {
    fn keyword(&self) -> &'static str {
        match self.dialect {
            Dialect::Draft7 => "definitions",
            Dialect::Draft2020 => "$defs",
        }
    }

    fn targets(&self) -> Vec<String> {
        let escape = |name: &str| {
            name.replace('~', "~0")
                .replace('/', "~1")
                .replace(' ', "%20")
        };
        let mut targets = vec!["#".to_owned()];
        for name in &self.definitions {
            targets.push(format!("#/{}/{}", self.keyword(), escape(name)));
        }
        if self.nested {
            let keyword = self.keyword();
            targets.push(format!(
                "#/{keyword}/{}/{keyword}/Inner",
                escape(self.definitions[0])
            ));
        }
        targets
    }
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        prop_oneof![Just(Dialect::Draft7), Just(Dialect::Draft2020)],
        proptest::sample::subsequence(DEFINITIONS, 1..=DEFINITIONS.len()),
        any::<bool>(),
    )
        .prop_map(|(dialect, definitions, nested)| Shape {
            dialect,
            definitions,
            nested,
        })
}

fn scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..10).prop_map(Value::from),
        prop_oneof![Just(0.5), Just(2.5), Just(-1.5)].prop_map(Value::from),
        proptest::sample::select(STRINGS).prop_map(Value::from),
    ]
    .boxed()
}

/// A schema; `descending`: whether it sits where the instance gets deeper
/// (a property, an item), the only places references go, so no reference
/// cycle can loop without consuming the instance.
fn schema(depth: u32, targets: Arc<Vec<String>>, descending: bool) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(json!({})),
        Just(json!(true)),
        (0u64..4).prop_map(|n| json!({ "type": "string", "maxLength": n })),
        (-2i64..3).prop_map(|n| json!({ "type": "integer", "minimum": n })),
        Just(json!({ "type": "number", "exclusiveMaximum": 2.5 })),
        Just(json!({ "type": "boolean" })),
        Just(json!({ "type": ["string", "null"] })),
        Just(json!({ "type": ["integer", "boolean", "null"] })),
        Just(json!({ "type": "null" })),
        scalar().prop_map(|v| json!({ "const": v })),
        proptest::collection::vec(scalar(), 1..4).prop_map(|v| json!({ "enum": v })),
    ]
    .boxed();
    let reference = {
        let targets = targets.clone();
        (0..targets.len(), any::<bool>())
            .prop_map(move |(i, sibling)| {
                if sibling {
                    json!({ "$ref": targets[i], "type": "object" })
                } else {
                    json!({ "$ref": targets[i] })
                }
            })
            .boxed()
    };
    let leaf = if descending {
        prop_oneof![2 => leaf, 1 => reference].boxed()
    } else {
        leaf
    };
    if depth == 0 {
        return leaf;
    }
    let inner = |descending| schema(depth - 1, targets.clone(), descending);
    let object = (
        proptest::collection::btree_map(proptest::sample::select(PROPERTIES), inner(true), 0..3),
        proptest::sample::subsequence(PROPERTIES, 0..2),
        prop_oneof![
            Just(None),
            any::<bool>().prop_map(|b| Some(json!(b))),
            inner(true).prop_map(Some)
        ],
    )
        .prop_map(|(properties, required, additional)| {
            let mut schema =
                json!({ "type": "object", "properties": properties, "required": required });
            if let Some(additional) = additional {
                schema["additionalProperties"] = additional;
            }
            schema
        });
    let array = (inner(true), proptest::option::of(0u64..3)).prop_map(|(items, max)| {
        let mut schema = json!({ "type": "array", "items": items });
        if let Some(max) = max {
            schema["maxItems"] = json!(max);
        }
        schema
    });
    let combined = (
        proptest::sample::select(&["anyOf", "oneOf", "allOf"][..]),
        proptest::collection::vec(inner(descending), 1..3),
    )
        .prop_map(|(keyword, branches)| json!({ (keyword): branches }));
    let negated = inner(descending).prop_map(|s| json!({ "not": s }));
    prop_oneof![2 => leaf, 3 => object, 2 => array, 2 => combined, 1 => negated].boxed()
}

/// A tool schema of `shape`: an object at the root, its definitions.
fn tool_schema(shape: Shape) -> BoxedStrategy<Value> {
    let targets = Arc::new(shape.targets());
    let definitions =
        proptest::collection::vec(schema(2, targets.clone(), false), shape.definitions.len());
    (
        schema(2, targets.clone(), true),
        definitions,
        schema(1, targets, false),
    )
        .prop_map(move |(property, bodies, inner)| {
            let keyword = shape.keyword();
            let mut definitions = Map::new();
            for (name, body) in shape.definitions.iter().zip(bodies) {
                definitions.insert((*name).to_owned(), body);
            }
            if shape.nested {
                let first = definitions
                    .get_mut(shape.definitions[0])
                    .expect("the first definition");
                if first.is_boolean() {
                    *first = json!({});
                }
                first[keyword] = json!({ "Inner": inner });
            }
            let mut root = json!({
                "type": "object",
                "properties": { "label": property, "children": { "type": "array", "items": { "$ref": "#" } } },
                (keyword): definitions
            });
            if let Dialect::Draft7 = shape.dialect {
                root["$schema"] = json!("http://json-schema.org/draft-07/schema#");
            }
            root
        })
        .boxed()
}

fn any_tool_schema() -> BoxedStrategy<Value> {
    shape().prop_flat_map(tool_schema).boxed()
}

fn sample(depth: u32) -> BoxedStrategy<Value> {
    if depth == 0 {
        return scalar();
    }
    prop_oneof![
        2 => scalar(),
        1 => proptest::collection::vec(sample(depth - 1), 0..3).prop_map(Value::from),
        3 => proptest::collection::btree_map(
            proptest::sample::select(PROPERTIES).prop_map(str::to_owned),
            sample(depth - 1),
            0..4
        )
        .prop_map(|m| Value::Object(m.into_iter().collect())),
    ]
    .boxed()
}

fn tools() -> impl Strategy<Value = Vec<Tool>> {
    proptest::sample::subsequence(TOOLS, 1..=2).prop_flat_map(|names| {
        let count = names.len();
        proptest::collection::vec(
            (any_tool_schema(), proptest::option::of(any_tool_schema())),
            count,
        )
        .prop_map(move |schemas| {
            names
                .iter()
                .zip(schemas)
                .map(|(name, (input, output))| Tool {
                    name: (*name).to_owned(),
                    input,
                    output,
                    annotations: None,
                })
                .collect()
        })
    })
}

fn platform() -> impl Strategy<Value = Vec<(String, Vec<Tool>)>> {
    proptest::sample::subsequence(SERVICES, 1..=3).prop_flat_map(|names| {
        let count = names.len();
        proptest::collection::vec(tools(), count).prop_map(move |tools| {
            names
                .iter()
                .map(|n| (*n).to_owned())
                .zip(tools)
                .collect::<Vec<_>>()
        })
    })
}

/// Every `$ref` string in `value`, with where it is.
fn references(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                found.push((at.to_owned(), r.to_owned()));
            }
            for (key, child) in map {
                references(child, &format!("{at}/{key}"), found);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                references(child, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

fn assert_references_resolve(doc: &Value) -> Result<(), TestCaseError> {
    let mut found = Vec::new();
    references(doc, "", &mut found);
    for (at, reference) in found {
        let pointer = reference.strip_prefix('#').unwrap_or("not local");
        prop_assert!(
            doc.pointer(pointer).is_some(),
            "{reference} at {at} does not resolve"
        );
    }
    Ok(())
}

/// A schema of the document as one JSON Schema document.
fn standalone(schema: &Value, doc: &Value) -> jsonschema::Validator {
    let wrapped =
        json!({ "allOf": [schema], "components": { "schemas": doc["components"]["schemas"] } });
    jsonschema::validator_for(&wrapped)
        .unwrap_or_else(|e| panic!("{e}: the document's schema does not compile: {wrapped:#}"))
}

/// What a 3.0 schema means, as JSON Schema 2020-12: `nullable` allows
/// `null`, boolean exclusive bounds take the bound.
fn as_json_schema(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out: Map<String, Value> = map
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "nullable" | "example"))
                .map(|(k, v)| (k.clone(), as_json_schema(v)))
                .collect();
            if map.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(t) = map.get("type").and_then(Value::as_str) {
                    out.insert("type".into(), json!([t, "null"]));
                }
            }
            for (exclusive, bound) in [
                ("exclusiveMinimum", "minimum"),
                ("exclusiveMaximum", "maximum"),
            ] {
                if let Some(strict) = map.get(exclusive).and_then(Value::as_bool) {
                    out.remove(exclusive);
                    if strict {
                        if let Some(limit) = out.remove(bound) {
                            out.insert(exclusive.into(), limit);
                        }
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(as_json_schema).collect()),
        other => other.clone(),
    }
}

fn operation_schemas(doc: &Value, path: &str) -> (Value, Option<Value>) {
    let operation = &doc["paths"][path]["post"];
    (
        operation["requestBody"]["content"]["application/json"]["schema"].clone(),
        operation["responses"]["200"]["content"]["application/json"]
            .get("schema")
            .cloned(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn documents_keep_every_schema_and_every_reference(
        platform in platform(),
        samples in proptest::collection::vec(sample(3), 12),
    ) {
        // Values the generated ones rarely hit: nulls where schemas allow them.
        let samples: Vec<Value> = samples
            .into_iter()
            .chain([
                json!({ "label": null }),
                json!({ "label": null, "children": [{ "label": null, "a": null }] }),
                json!({ "a": null, "b": [null], "$ref": null }),
                json!({ "label": "ab", "children": [{ "label": 1 }, { "label": true }] }),
            ])
            .collect();
        let records: Vec<_> = platform
            .into_iter()
            .map(|(name, tools)| service(&name, tools))
            .collect();
        let doc = document::build(&records, "https://tools.example.com");
        prop_assert_eq!(&document::build(&records, "https://tools.example.com"), &doc, "rebuilds are identical");
        assert_references_resolve(&doc)?;
        let aws_doc = aws::convert(&doc, None);
        assert_references_resolve(&aws_doc)?;
        for name in aws_doc["components"]["schemas"].as_object().unwrap().keys() {
            prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric()), "model name {}", name);
        }
        let aws_text = aws_doc.to_string();
        for only_3_1 in ["\"$defs\"", "\"definitions\"", "\"$schema\"", "\"const\"", "\"examples\"", "\"prefixItems\""] {
            prop_assert!(!aws_text.contains(only_3_1), "{} in the 3.0 document", only_3_1);
        }

        for record in &records {
            for tool in &record.tools {
                let path = &tool.tool.endpoint;
                let (input, output) = operation_schemas(&doc, path);
                let (aws_input, aws_output) = operation_schemas(&aws_doc, path);
                let pairs = [
                    (Some(&tool.schema.input_schema), Some(input), aws_input),
                    (tool.schema.output_schema.as_ref(), output, aws_output.unwrap_or(Value::Null)),
                ];
                for (original, translated, flavour) in pairs {
                    let (Some(original), Some(translated)) = (original, translated) else {
                        continue;
                    };
                    let before = jsonschema::validator_for(original).expect("generated schemas compile");
                    let after = standalone(&translated, &doc);
                    let aws_view = json!({ "components": { "schemas": as_json_schema(&aws_doc["components"]["schemas"]) } });
                    let wider = standalone(&as_json_schema(&flavour), &aws_view);
                    for value in &samples {
                        let accepted = before.is_valid(value);
                        prop_assert_eq!(
                            accepted,
                            after.is_valid(value),
                            "{} at {}: {:#}\ntranslated: {:#}",
                            value, path, original, translated
                        );
                        if accepted {
                            prop_assert!(wider.is_valid(value), "the 3.0 schema refuses {} at {}: {:#}", value, path, flavour);
                        }
                    }
                }
            }
        }
    }
}
