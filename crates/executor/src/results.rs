//! How an MCP tool result becomes an HTTP answer (documented in
//! docs/tool-results.md):
//! - `isError: true` → 502 `tool_error`, the content in `details.content`;
//! - `structuredContent` present → 200 with it as the body;
//! - one text content → 200 with the text parsed as JSON when it is JSON, else
//!   the text as a JSON string;
//! - several contents → 200 with an array, each text as above and every other
//!   block (image, audio, resource, resource link) as its MCP JSON object;
//! - one non-text content → 200 with its MCP JSON object;
//! - no content → 200 with `null`;
//! - one image or audio block, and `Accept` naming its type → 200 with the
//!   decoded bytes under that `Content-Type`;
//! - structured content that does not match the tool's output schema → 502
//!   `upstream_protocol_error`, each problem in `details.errors`.

use base64::Engine;
use mcpo_core::mcp::{ContentBlock, ToolCallResult};
use serde_json::Value;

use crate::error::ExecutorError;
use crate::routing::ToolRoute;

/// What the HTTP answer carries.
#[derive(Debug, PartialEq)]
pub enum Answer {
    Json(Value),
    /// The decoded bytes of an image or audio result, for a client whose
    /// `Accept` names their type.
    Bytes {
        mime: String,
        bytes: Vec<u8>,
    },
}

/// At most this many output-schema errors are listed in one answer.
const MAX_LISTED_ERRORS: usize = 50;

pub fn to_answer(
    tool: &ToolRoute,
    result: ToolCallResult,
    accept: Option<&str>,
) -> Result<Answer, ExecutorError> {
    if result.is_error == Some(true) {
        return Err(ExecutorError::ToolError {
            tool: tool.name.clone(),
            content: result.content.iter().map(block_json).collect(),
        });
    }
    if let Some(structured) = result.structured_content {
        if let Some(output) = &tool.output {
            let errors: Vec<Value> = output
                .iter_errors(&structured)
                .take(MAX_LISTED_ERRORS)
                .map(|e| serde_json::json!({ "pointer": e.instance_path().to_string(), "message": e.to_string() }))
                .collect();
            if !errors.is_empty() {
                return Err(ExecutorError::OutputRejected {
                    tool: tool.name.clone(),
                    errors,
                });
            }
        }
        return Ok(Answer::Json(structured));
    }
    if let ([block], Some(accept)) = (result.content.as_slice(), accept) {
        if let Some((mime, data)) = binary(block) {
            if accepts(accept, mime) {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|e| {
                        ExecutorError::Upstream(mcpo_core::mcp::McpError::Protocol(format!(
                            "the tool's {mime} content is not valid base64: {e}"
                        )))
                    })?;
                return Ok(Answer::Bytes {
                    mime: mime.to_owned(),
                    bytes,
                });
            }
        }
    }
    let mut values: Vec<Value> = result.content.iter().map(block_value).collect();
    Ok(Answer::Json(match values.len() {
        0 => Value::Null,
        1 => values.remove(0),
        _ => Value::Array(values),
    }))
}

/// The MIME type and base64 data of an image or audio block.
fn binary(block: &ContentBlock) -> Option<(&str, &str)> {
    match block {
        ContentBlock::Image(image) => Some((&image.mime_type, &image.data)),
        ContentBlock::Audio(audio) => Some((&audio.mime_type, &audio.data)),
        _ => None,
    }
}

/// Whether `Accept` names `mime` or its type (`image/*`). `*/*` does not
/// count: it is what clients send by default, and they get JSON.
fn accepts(accept: &str, mime: &str) -> bool {
    let kind = mime.split('/').next().unwrap_or_default();
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let refused = parts.any(|p| p.replace(' ', "") == "q=0");
        !refused
            && (media.eq_ignore_ascii_case(mime)
                || media
                    .strip_suffix("/*")
                    .is_some_and(|t| t != "*" && t.eq_ignore_ascii_case(kind)))
    })
}

fn block_value(block: &ContentBlock) -> Value {
    match block {
        ContentBlock::Text(text) => {
            serde_json::from_str(&text.text).unwrap_or_else(|_| Value::String(text.text.clone()))
        }
        other => block_json(other),
    }
}

fn block_json(block: &ContentBlock) -> Value {
    serde_json::to_value(block).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use serde_json::json;

    fn result(json: Value) -> ToolCallResult {
        serde_json::from_value(json).unwrap()
    }

    fn route(name: &str, output: Option<Value>) -> ToolRoute {
        ToolRoute {
            name: name.into(),
            validator: None,
            output: output.map(|s| Arc::new(jsonschema::validator_for(&s).unwrap())),
        }
    }

    fn json_of(tool: &str, r: ToolCallResult) -> Result<Value, ExecutorError> {
        match to_answer(&route(tool, None), r, None)? {
            Answer::Json(value) => Ok(value),
            other => panic!("{other:?}"),
        }
    }

    const PIXEL: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

    #[test]
    fn images_come_raw_only_when_accept_names_their_type() {
        let image = || {
            result(json!({"content": [{"type": "image", "data": PIXEL, "mimeType": "image/png"}]}))
        };
        for accept in ["image/png", "image/*", "application/json;q=0.5, image/png"] {
            match to_answer(&route("i", None), image(), Some(accept)).unwrap() {
                Answer::Bytes { mime, bytes } => {
                    assert_eq!(mime, "image/png");
                    assert_eq!(&bytes[..4], b"\x89PNG");
                }
                other => panic!("{accept}: {other:?}"),
            }
        }
        for accept in [
            None,
            Some("*/*"),
            Some("application/json"),
            Some("image/jpeg"),
            Some("image/png;q=0"),
        ] {
            assert!(
                matches!(
                    to_answer(&route("i", None), image(), accept).unwrap(),
                    Answer::Json(_)
                ),
                "{accept:?}"
            );
        }
    }

    #[test]
    fn structured_content_must_match_the_output_schema() {
        let schema = json!({"type": "object", "properties": {"sum": {"type": "number"}}, "required": ["sum"]});
        let bad = result(json!({"content": [], "structuredContent": {"sum": "x"}}));
        match to_answer(&route("add", Some(schema.clone())), bad, None) {
            Err(ExecutorError::OutputRejected { errors, .. }) => {
                assert_eq!(errors[0]["pointer"], "/sum")
            }
            other => panic!("{other:?}"),
        }
        let good = result(json!({"content": [], "structuredContent": {"sum": 3}}));
        assert_eq!(
            to_answer(&route("add", Some(schema)), good, None).unwrap(),
            Answer::Json(json!({"sum": 3}))
        );
    }

    #[test]
    fn structured_content_wins() {
        let r = result(
            json!({"content": [{"type": "text", "text": "{\"sum\":3}"}], "structuredContent": {"sum": 3}}),
        );
        assert_eq!(json_of("add", r).unwrap(), json!({"sum": 3}));
    }

    #[test]
    fn text_json_and_plain() {
        assert_eq!(
            json_of(
                "t",
                result(json!({"content": [{"type": "text", "text": "[1,2]"}]}))
            )
            .unwrap(),
            json!([1, 2])
        );
        assert_eq!(
            json_of(
                "t",
                result(json!({"content": [{"type": "text", "text": "hi"}]}))
            )
            .unwrap(),
            json!("hi")
        );
        assert_eq!(
            json_of("t", result(json!({"content": []}))).unwrap(),
            Value::Null
        );
    }

    #[test]
    fn several_contents_make_an_array() {
        let r = result(json!({"content": [
            {"type": "text", "text": "a"},
            {"type": "image", "data": "AAAA", "mimeType": "image/png"}
        ]}));
        assert_eq!(
            json_of("t", r).unwrap(),
            json!(["a", {"type": "image", "data": "AAAA", "mimeType": "image/png"}])
        );
    }

    #[test]
    fn is_error_is_an_error_with_content() {
        let r = result(json!({"content": [{"type": "text", "text": "boom"}], "isError": true}));
        match json_of("fail", r) {
            Err(ExecutorError::ToolError { content, .. }) => assert_eq!(content[0]["text"], "boom"),
            other => panic!("expected a tool error, got {other:?}"),
        }
    }
}
