use serde_json::Value;
use sha2::{Digest, Sha256};

/// Hash of a tool's schema pair that does not depend on key order, so the same
/// schema served by two servers (or twice by one) is stored once.
pub fn schema_pair_hash(schema_type: &str, input: &Value, output: Option<&Value>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(schema_type.as_bytes());
    hasher.update([0]);
    write_canonical(&mut hasher, input);
    hasher.update([0]);
    if let Some(output) = output {
        write_canonical(&mut hasher, output);
    }
    hex::encode(hasher.finalize())
}

/// SHA-256 of a JSON value's canonical (key-sorted) form, hex-encoded.
pub fn canonical_hash(value: &Value) -> String {
    let mut hasher = Sha256::new();
    write_canonical(&mut hasher, value);
    hex::encode(hasher.finalize())
}

fn write_canonical(hasher: &mut Sha256, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            hasher.update(b"{");
            for key in keys {
                hasher.update(serde_json::to_string(key).unwrap_or_default().as_bytes());
                hasher.update(b":");
                write_canonical(hasher, &map[key]);
                hasher.update(b",");
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            for item in items {
                write_canonical(hasher, item);
                hasher.update(b",");
            }
            hasher.update(b"]");
        }
        other => hasher.update(other.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_matter() {
        let a = json!({"type": "object", "properties": {"x": {"type": "string"}, "y": {}}});
        let b: Value = serde_json::from_str(
            r#"{"properties": {"y": {}, "x": {"type": "string"}}, "type": "object"}"#,
        )
        .unwrap();
        assert_eq!(
            schema_pair_hash("json_schema", &a, None),
            schema_pair_hash("json_schema", &b, None)
        );
        assert_ne!(
            schema_pair_hash("json_schema", &a, None),
            schema_pair_hash("json_schema", &a, Some(&json!({})))
        );
    }
}
