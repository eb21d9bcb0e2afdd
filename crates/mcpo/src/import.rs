//! `mcpo import FILE`: the registry's `services:import`, from the command line.

use anyhow::Context;
use serde_json::Value;

pub async fn import(
    file: &std::path::Path,
    registry: &str,
    token: Option<&str>,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let body: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    let url = format!(
        "{}/api/v1/mcpo/services:import",
        registry.trim_end_matches('/')
    );
    let mut request = reqwest::Client::new().post(&url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach the registry at {registry}"))?;
    let status = response.status();
    let report: Value = response
        .json()
        .await
        .context("the registry's answer is not JSON")?;
    if !status.is_success() {
        anyhow::bail!(
            "{} ({status})",
            report["message"].as_str().unwrap_or("import refused")
        );
    }
    for entry in report["entries"].as_array().into_iter().flatten() {
        match entry["outcome"].as_str() {
            Some("registered") => {
                let tools = entry["service"]["tools"].as_array().map_or(0, Vec::len);
                println!(
                    "registered  {}  ({tools} tools)",
                    entry["name"].as_str().unwrap_or("?")
                );
            }
            _ => println!(
                "failed      {}  {}: {}",
                entry["name"].as_str().unwrap_or("?"),
                entry["code"].as_str().unwrap_or("?"),
                entry["message"].as_str().unwrap_or("")
            ),
        }
    }
    let failed = report["failed"].as_u64().unwrap_or(0);
    println!("{} registered, {failed} failed", report["registered"]);
    if failed > 0 {
        anyhow::bail!(
            "{failed} entr{} failed",
            if failed == 1 { "y" } else { "ies" }
        );
    }
    Ok(())
}
