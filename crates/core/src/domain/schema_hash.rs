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

/// Feeds `value`'s canonical form to `hasher`: keys sorted, each member and
/// item followed by `,`. Stored hashes (schemas, document versions) were made
/// with this exact form, so it must not change.
fn write_canonical(hasher: &mut Sha256, value: &Value) {
    let mut sink = Sink {
        hasher,
        buffer: Vec::with_capacity(Sink::CAPACITY),
    };
    sink.value(value);
    sink.flush_buffer();
}

/// Gathers the many small pieces of the form before hashing them: a whole
/// document is millions of them.
struct Sink<'h> {
    hasher: &'h mut Sha256,
    buffer: Vec<u8>,
}

impl Sink<'_> {
    const CAPACITY: usize = 64 * 1024;

    fn value(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                self.buffer.push(b'{');
                // Without serde_json's `preserve_order` the map is sorted
                // already: no copy of its keys to sort.
                let sorted = map.keys().zip(map.keys().skip(1)).all(|(a, b)| a < b);
                if sorted {
                    for (key, member) in map {
                        self.member(key, member);
                    }
                } else {
                    let mut keys: Vec<&String> = map.keys().collect();
                    keys.sort();
                    for key in keys {
                        self.member(key, &map[key]);
                    }
                }
                self.buffer.push(b'}');
            }
            Value::Array(items) => {
                self.buffer.push(b'[');
                for item in items {
                    self.value(item);
                    self.buffer.push(b',');
                }
                self.buffer.push(b']');
            }
            // A string's or number's JSON text, as `Value::to_string` gives it.
            other => self.json(other),
        }
        if self.buffer.len() >= Self::CAPACITY {
            self.flush_buffer();
        }
    }

    fn member(&mut self, key: &str, value: &Value) {
        self.json(key);
        self.buffer.push(b':');
        self.value(value);
        self.buffer.push(b',');
    }

    fn json(&mut self, value: &(impl serde::Serialize + ?Sized)) {
        // Writing to a Vec cannot fail, nor can serializing a string or a
        // `Value`'s scalar.
        let _ = serde_json::to_writer(&mut self.buffer, value);
    }

    fn flush_buffer(&mut self) {
        self.hasher.update(&self.buffer);
        self.buffer.clear();
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

    /// The hashes of stored schemas and document versions: a new version of
    /// the code must give the same ones, or every document would get a new
    /// version on upgrade.
    #[test]
    fn the_canonical_form_does_not_change() {
        let value: Value = serde_json::from_str(
            r#"{"z": [1, -2, 3.5, 1e300, 0.1, true, false, null, "é\"\n\u0001</"], "a": {"y": {}, "x": [], "": "", "é": {"b": 1, "a": [{"k": "v"}]}}, "m": 18446744073709551615}"#,
        )
        .unwrap();
        assert_eq!(
            canonical_hash(&value),
            "a9fafe5fdadceed62bdd944d63e1ef8043254bc4d903ef21cd6013ff43aea39c"
        );
        assert_eq!(
            schema_pair_hash("json_schema", &value, Some(&json!({"type": "object"}))),
            "e71ac414043f716b29c4ec7b6c8dcd0395740aa01e740ed9bc5aed348f2f7b8f"
        );
        assert_eq!(
            schema_pair_hash("mcp", &value, None),
            "67cf6c3c0ebad16dcf21320a0f1a66eb1d6fc116ee82390c90873d70e4e3dc32"
        );
    }
}
