use serde_json::{json, Value};

use super::*;

/// Translates one schema alone; returns what goes inline and the components.
fn translate(schema: Value) -> (Value, Map<String, Value>) {
    let mut components = Components::new();
    let inline = components.translate("svc_tool", "Input", &schema);
    (inline, components.take_schemas())
}

/// The translated schema as one JSON Schema document a validator can load.
fn standalone(inline: &Value, components: &Map<String, Value>) -> Value {
    json!({ "allOf": [inline], "components": { "schemas": components } })
}

/// The original and the translation give the same verdict on each sample.
fn assert_same_verdicts(original: &Value, samples: &[Value]) {
    let (inline, components) = translate(original.clone());
    let before = jsonschema::validator_for(original).expect("the original compiles");
    let after = jsonschema::validator_for(&standalone(&inline, &components))
        .expect("the translation compiles");
    for sample in samples {
        assert_eq!(
            before.is_valid(sample),
            after.is_valid(sample),
            "{sample} in\n{original:#}\ntranslated\n{inline:#}\n{components:#?}"
        );
    }
}

/// Every `$ref` in `value`.
fn refs(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    fn walk(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                    found.push(r.to_owned());
                }
                map.values().for_each(|v| walk(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    walk(value, &mut found);
    found
}

fn assert_refs_resolve(inline: &Value, components: &Map<String, Value>) {
    let doc = json!({ "components": { "schemas": components } });
    for r in refs(inline).into_iter().chain(refs(&doc)) {
        let pointer = r.strip_prefix('#').expect("a local reference");
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
}

#[test]
fn definitions_become_components_and_references_follow() {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": { "where": { "$ref": "#/$defs/Place" }, "when": { "type": ["string", "null"] } },
        "required": ["where"],
        "$defs": {
            "Place": { "type": "object", "properties": { "city": { "const": "Paris" } }, "additionalProperties": false },
            "Unused": { "type": "integer" }
        }
    });
    let (inline, components) = translate(schema.clone());
    assert_eq!(
        inline,
        json!({
            "type": "object",
            "properties": { "where": { "$ref": "#/components/schemas/svc_tool_Place" }, "when": { "type": ["string", "null"] } },
            "required": ["where"]
        })
    );
    assert_eq!(components["svc_tool_Place"], schema["$defs"]["Place"]);
    assert_eq!(components["svc_tool_Unused"], json!({ "type": "integer" }));
    assert_refs_resolve(&inline, &components);
    assert_same_verdicts(
        &schema,
        &[
            json!({ "where": { "city": "Paris" } }),
            json!({ "where": { "city": "Rome" } }),
            json!({ "where": { "city": "Paris", "zip": 1 } }),
            json!({ "where": {}, "when": null }),
            json!({ "where": {}, "when": 3 }),
            json!({}),
        ],
    );
}

#[test]
fn a_reference_to_the_root_lifts_the_root() {
    let schema = json!({
        "type": "object",
        "properties": { "label": { "type": "string" }, "children": { "type": "array", "items": { "$ref": "#" } } },
        "required": ["label"]
    });
    let (inline, components) = translate(schema.clone());
    assert_eq!(
        inline,
        json!({ "$ref": "#/components/schemas/svc_tool_Input" })
    );
    assert_eq!(
        components["svc_tool_Input"]["properties"]["children"]["items"],
        json!({ "$ref": "#/components/schemas/svc_tool_Input" })
    );
    assert_refs_resolve(&inline, &components);
    assert_same_verdicts(
        &schema,
        &[
            json!({ "label": "a", "children": [{ "label": "b", "children": [{ "label": "c" }] }] }),
            json!({ "label": "a", "children": [{ "label": "b", "children": [{ "name": "c" }] }] }),
            json!({ "label": "a", "children": [1] }),
        ],
    );
}

#[test]
fn nested_definitions_and_pointers_into_the_schema_are_lifted() {
    let schema = json!({
        "type": "object",
        "properties": {
            "a": { "type": "string", "minLength": 2 },
            "b": { "$ref": "#/properties/a" },
            "c": { "$ref": "#/$defs/Outer/$defs/Inner" },
            "d": { "$ref": "#/$defs/Outer" },
            "e": { "$ref": "#/$defs/a~1b%20c~0" }
        },
        "$defs": {
            "Outer": {
                "type": "object",
                "properties": { "inner": { "$ref": "#/$defs/Outer/$defs/Inner" } },
                "$defs": { "Inner": { "enum": [1, 2] } }
            },
            "a/b c~": { "type": "boolean" }
        }
    });
    let (inline, components) = translate(schema.clone());
    let names: Vec<&String> = components.keys().collect();
    assert_eq!(
        names,
        [
            "svc_tool_Outer",
            "svc_tool_Outer_Inner",
            "svc_tool_a_b_c_",
            "svc_tool_properties_a"
        ]
    );
    assert_eq!(
        inline["properties"]["a"],
        json!({ "$ref": "#/components/schemas/svc_tool_properties_a" }),
        "the pointed schema is referred to where it stood too"
    );
    assert!(components["svc_tool_Outer"].get("$defs").is_none());
    assert_refs_resolve(&inline, &components);
    assert_same_verdicts(
        &schema,
        &[
            json!({ "a": "xy", "b": "xy", "c": 1, "d": { "inner": 2 }, "e": true }),
            json!({ "b": "x" }),
            json!({ "c": 3 }),
            json!({ "d": { "inner": 3 } }),
            json!({ "e": "yes" }),
        ],
    );
}

#[test]
fn draft_07_schemas_are_rewritten_into_2020_12() {
    // What zod-to-json-schema writes: a root `$ref` beside `definitions`.
    let schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$ref": "#/definitions/Args",
        "definitions": {
            "Args": {
                "type": "object",
                "properties": {
                    "pair": { "type": "array", "items": [{ "type": "string" }, { "type": "integer" }], "additionalItems": false },
                    "kind": { "$ref": "#/definitions/Kind", "description": "ignored siblings", "type": "integer" },
                    "card": { "type": "string" },
                    "cvv": { "type": "string" }
                },
                "dependencies": { "card": ["cvv"], "cvv": { "required": ["card"] } }
            },
            "Kind": { "enum": ["a", "b"] }
        }
    });
    let (inline, components) = translate(schema.clone());
    assert_eq!(
        inline,
        json!({ "$ref": "#/components/schemas/svc_tool_Args" })
    );
    let args = &components["svc_tool_Args"];
    assert_eq!(
        args["properties"]["pair"],
        json!({ "type": "array", "prefixItems": [{ "type": "string" }, { "type": "integer" }], "items": false })
    );
    assert_eq!(
        args["properties"]["kind"],
        json!({ "$ref": "#/components/schemas/svc_tool_Kind", "description": "ignored siblings" })
    );
    assert_eq!(args["dependentRequired"], json!({ "card": ["cvv"] }));
    assert_eq!(
        args["dependentSchemas"],
        json!({ "cvv": { "required": ["card"] } })
    );
    assert_refs_resolve(&inline, &components);
    assert_same_verdicts(
        &schema,
        &[
            json!({ "pair": ["a", 1] }),
            json!({ "pair": ["a", 1, 2] }),
            json!({ "pair": [1, "a"] }),
            json!({ "kind": "a" }),
            json!({ "kind": 3 }),
            json!({ "card": "x" }),
            json!({ "card": "x", "cvv": "1" }),
            json!({ "cvv": "1" }),
        ],
    );
}

#[test]
fn draft_04_boolean_exclusive_bounds_take_the_bound() {
    let schema = json!({
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "properties": {
            "n": { "type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 10, "exclusiveMaximum": false }
        }
    });
    let (inline, _) = translate(schema.clone());
    assert_eq!(
        inline["properties"]["n"],
        json!({ "type": "number", "exclusiveMinimum": 0, "maximum": 10 })
    );
    assert_same_verdicts(
        &schema,
        &[
            json!({ "n": 0 }),
            json!({ "n": 0.5 }),
            json!({ "n": 10 }),
            json!({ "n": 10.5 }),
        ],
    );
}

#[test]
fn ids_and_anchors_resolve() {
    let schema = json!({
        "$id": "https://example.com/schemas/order.json",
        "type": "object",
        "properties": {
            "by_anchor": { "$ref": "#money" },
            "by_absolute": { "$ref": "https://example.com/schemas/order.json#/$defs/Qty" },
            "by_relative": { "$ref": "order.json#/$defs/Qty" },
            "embedded": { "$ref": "https://example.com/schemas/address.json" },
            "inside_embedded": { "$ref": "address.json#/properties/zip" }
        },
        "$defs": {
            "Money": { "$anchor": "money", "type": "number", "multipleOf": 0.01 },
            "Qty": { "type": "integer", "minimum": 1 },
            "Address": {
                "$id": "address.json",
                "type": "object",
                "properties": { "zip": { "type": "string", "pattern": "^[0-9]{5}$" }, "again": { "$ref": "#/properties/zip" } }
            }
        }
    });
    let (inline, components) = translate(schema.clone());
    assert_eq!(
        inline["properties"]["by_anchor"],
        json!({ "$ref": "#/components/schemas/svc_tool_Money" })
    );
    assert_eq!(
        inline["properties"]["embedded"],
        json!({ "$ref": "#/components/schemas/svc_tool_Address" })
    );
    assert_eq!(
        components["svc_tool_Address"]["properties"]["again"],
        json!({ "$ref": "#/components/schemas/svc_tool_Address_properties_zip" }),
        "a reference inside an embedded resource resolves against its `$id`"
    );
    let text = serde_json::to_string(&components).unwrap() + &inline.to_string();
    assert!(!text.contains("$id") && !text.contains("$anchor"), "{text}");
    assert_refs_resolve(&inline, &components);
    assert_same_verdicts(
        &schema,
        &[
            json!({ "by_anchor": 1.5, "by_absolute": 2, "by_relative": 3, "embedded": { "zip": "75001", "again": "75002" }, "inside_embedded": "12345" }),
            json!({ "by_absolute": 0 }),
            json!({ "by_relative": 1.5 }),
            json!({ "embedded": { "again": "7500" } }),
            json!({ "inside_embedded": "x" }),
        ],
    );
}

#[test]
fn unresolvable_references_are_kept_aside_and_constrain_nothing() {
    let schema = json!({
        "type": "object",
        "properties": {
            "remote": { "$ref": "https://example.com/other.json#/$defs/X", "description": "kept" },
            "missing": { "$ref": "#/$defs/Nowhere" },
            "not_a_schema": { "$ref": "#/required" }
        },
        "required": ["remote"]
    });
    let (inline, components) = translate(schema);
    assert_eq!(
        inline["properties"]["remote"],
        json!({ "description": "kept", "x-mcp-unresolved-ref": "https://example.com/other.json#/$defs/X" })
    );
    assert_eq!(
        inline["properties"]["missing"],
        json!({ "x-mcp-unresolved-ref": "#/$defs/Nowhere" })
    );
    assert_eq!(
        inline["properties"]["not_a_schema"],
        json!({ "x-mcp-unresolved-ref": "#/required" })
    );
    assert!(components.is_empty());
}

#[test]
fn keywords_are_told_from_property_names_and_values() {
    let schema = json!({
        "type": "object",
        "properties": {
            "$ref": { "type": "string" },
            "$defs": { "type": "integer" },
            "definitions": { "enum": [{ "$ref": "#/not/a/reference" }] }
        },
        "default": { "$defs": { "X": {} } }
    });
    let (inline, components) = translate(schema.clone());
    assert_eq!(
        inline, schema,
        "nothing here is a reference or a definition"
    );
    assert!(components.is_empty());
}

#[test]
fn names_are_sanitized_and_clashes_numbered_in_a_fixed_order() {
    let mut components = Components::new();
    components.insert("Error", json!({}));
    let first = json!({ "properties": { "x": { "$ref": "#/$defs/a b" } }, "$defs": { "a b": { "type": "string" }, "a_b": { "type": "integer" } } });
    let second = json!({ "properties": { "x": { "$ref": "#/$defs/a_b" } }, "$defs": { "a_b": { "type": "boolean" } } });
    let one = components.translate("svc.x/y", "Input", &first);
    let two = components.translate("svc.x/y", "Output", &second);
    assert_eq!(
        one["properties"]["x"]["$ref"],
        "#/components/schemas/svc.x_y_a_b"
    );
    assert_eq!(
        two["properties"]["x"]["$ref"],
        "#/components/schemas/svc.x_y_a_b_3"
    );
    let schemas = components.take_schemas();
    assert_eq!(schemas["svc.x_y_a_b"], json!({ "type": "string" }));
    assert_eq!(schemas["svc.x_y_a_b_2"], json!({ "type": "integer" }));
    assert_eq!(schemas["svc.x_y_a_b_3"], json!({ "type": "boolean" }));

    // The same input gives the same names and schemas.
    let mut again = Components::new();
    again.insert("Error", json!({}));
    assert_eq!(again.translate("svc.x/y", "Input", &first), one);
    assert_eq!(again.translate("svc.x/y", "Output", &second), two);
    assert_eq!(again.take_schemas(), schemas);
}

#[test]
fn several_references_in_one_object_all_apply() {
    let schema = json!({
        "$ref": "#/$defs/A",
        "$dynamicRef": "#/$defs/B",
        "$defs": { "A": { "minimum": 1 }, "B": { "maximum": 5 } }
    });
    let (inline, components) = translate(schema.clone());
    assert_eq!(
        inline,
        json!({ "$ref": "#/components/schemas/svc_tool_A", "allOf": [{ "$ref": "#/components/schemas/svc_tool_B" }] })
    );
    assert_refs_resolve(&inline, &components);
    assert_same_verdicts(&schema, &[json!(0), json!(3), json!(6)]);
}

#[test]
fn percent_decoding_keeps_what_is_not_an_escape() {
    assert_eq!(percent_decode("/a%20b/c%2Fd"), "/a b/c/d");
    assert_eq!(percent_decode("100%"), "100%");
    assert_eq!(percent_decode("%zz%4"), "%zz%4");
}
