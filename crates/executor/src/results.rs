//! How an MCP tool result becomes an HTTP answer (documented in
//! docs/tool-results.md):
//! - `isError: true` → 502 `tool_error`, the content in `details.content`;
//! - `structuredContent` present → 200 with it as the body;
//! - one text content → 200 with the text parsed as JSON when it is JSON, else
//!   the text as a JSON string;
//! - several contents → 200 with an array, each text as above and every other
//!   block (image, audio, resource, resource link) as its MCP JSON object;
//! - one non-text content → 200 with its MCP JSON object;
//! - no content → 200 with `null`.

use mcpo_core::mcp::{ContentBlock, ToolCallResult};
use serde_json::Value;

use crate::error::ExecutorError;

pub fn to_answer(tool: &str, result: ToolCallResult) -> Result<Value, ExecutorError> {
    if result.is_error == Some(true) {
        return Err(ExecutorError::ToolError {
            tool: tool.to_owned(),
            content: result.content.iter().map(block_json).collect(),
        });
    }
    if let Some(structured) = result.structured_content {
        return Ok(structured);
    }
    let mut values: Vec<Value> = result.content.iter().map(block_value).collect();
    Ok(match values.len() {
        0 => Value::Null,
        1 => values.remove(0),
        _ => Value::Array(values),
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
    use super::*;
    use serde_json::json;

    fn result(json: Value) -> ToolCallResult {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn structured_content_wins() {
        let r = result(
            json!({"content": [{"type": "text", "text": "{\"sum\":3}"}], "structuredContent": {"sum": 3}}),
        );
        assert_eq!(to_answer("add", r).unwrap(), json!({"sum": 3}));
    }

    #[test]
    fn text_json_and_plain() {
        assert_eq!(
            to_answer(
                "t",
                result(json!({"content": [{"type": "text", "text": "[1,2]"}]}))
            )
            .unwrap(),
            json!([1, 2])
        );
        assert_eq!(
            to_answer(
                "t",
                result(json!({"content": [{"type": "text", "text": "hi"}]}))
            )
            .unwrap(),
            json!("hi")
        );
        assert_eq!(
            to_answer("t", result(json!({"content": []}))).unwrap(),
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
            to_answer("t", r).unwrap(),
            json!(["a", {"type": "image", "data": "AAAA", "mimeType": "image/png"}])
        );
    }

    #[test]
    fn is_error_is_an_error_with_content() {
        let r = result(json!({"content": [{"type": "text", "text": "boom"}], "isError": true}));
        match to_answer("fail", r) {
            Err(ExecutorError::ToolError { content, .. }) => assert_eq!(content[0]["text"], "boom"),
            other => panic!("expected a tool error, got {other:?}"),
        }
    }
}
