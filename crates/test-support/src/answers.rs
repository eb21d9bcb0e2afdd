//! Reading what the services answer, the same way in every test.

use serde_json::Value;

/// The status and the JSON body; a body that is not JSON comes as a string,
/// so a test's message shows it whatever it was.
pub async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// The names of a service's tools, sorted; none if `service` lists no tools
/// (an error body, say), so a caller polling for a list sees it as not yet.
pub fn tool_names(service: &Value) -> Vec<String> {
    let mut names: Vec<String> = service["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}
