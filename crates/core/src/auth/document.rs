//! How an OpenAPI document tells clients to authenticate: the two schemes,
//! and the 401/403/503 answers every secured operation can give.

use serde_json::{json, Value};

use super::API_KEY_HEADER;

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

/// Adds the `bearer` (OAuth2 access token, or an API key) and `api_key`
/// (`X-Api-Key`) schemes, and to every operation that declares `security`
/// the answers authentication adds.
/// `error_schema` names the document's schema of error bodies.
pub fn add_security(document: &mut Value, error_schema: &str) {
    let error_schema = match document.pointer(&format!("/components/schemas/{error_schema}")) {
        Some(_) => json!({ "$ref": format!("#/components/schemas/{error_schema}") }),
        None => json!({
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": { "type": "string" },
                "message": { "type": "string" },
                "details": {}
            }
        }),
    };
    let answer = |description: &str| {
        json!({
            "description": description,
            "content": { "application/json": { "schema": error_schema.clone() } }
        })
    };
    let added = [
        ("401", answer("No credentials (`unauthenticated`), or they were refused (`invalid_token`); see `WWW-Authenticate`")),
        ("403", answer("The caller lacks the permission this operation declares (`permission_denied`)")),
        ("503", answer("Credentials cannot be checked right now (`auth_unavailable`), or a dependency is down")),
    ];
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            for method in METHODS {
                let Some(operation) = item.get_mut(*method) else {
                    continue;
                };
                if operation.get("security").is_none() {
                    continue;
                }
                let responses = operation
                    .as_object_mut()
                    .expect("an operation is an object")
                    .entry("responses")
                    .or_insert_with(|| json!({}));
                if let Some(responses) = responses.as_object_mut() {
                    for (status, body) in &added {
                        responses
                            .entry(status.to_string())
                            .or_insert_with(|| body.clone());
                    }
                }
            }
        }
    }
    let components = document
        .as_object_mut()
        .expect("a document is an object")
        .entry("components")
        .or_insert_with(|| json!({}));
    components["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT or MCPO API key",
            "description": "An OAuth2 access token from the configured issuer (permissions in the claim the deployment configures, `permissions` by default), or an MCPO API key (`mcpo_…`)."
        },
        "api_key": {
            "type": "apiKey",
            "in": "header",
            "name": API_KEY_HEADER,
            "description": "An MCPO API key, for callers that cannot send a bearer token."
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secured_operations_get_the_auth_answers() {
        let mut doc = json!({
            "openapi": "3.1.0",
            "paths": {
                "/a": { "get": { "security": [{ "bearer": ["x"] }], "responses": { "200": { "description": "ok" } } } },
                "/b": { "get": { "responses": { "200": { "description": "ok" } } } }
            }
        });
        add_security(&mut doc, "ErrorBody");
        assert!(doc.pointer("/paths/~1a/get/responses/401").is_some());
        assert!(doc.pointer("/paths/~1a/get/responses/403").is_some());
        assert!(doc.pointer("/paths/~1b/get/responses/401").is_none());
        assert_eq!(
            doc["components"]["securitySchemes"]["api_key"]["name"],
            "x-api-key"
        );
    }
}
