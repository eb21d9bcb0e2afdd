//! `mcpo up`: everything a newcomer needs, in one process.

use anyhow::Context;
use mcpo_core::server::Dependencies;
use mcpo_core::Settings;

pub const DEMO_SERVICE: &str = "demo";

pub async fn up(demo: bool) -> anyhow::Result<()> {
    let mut settings = Settings::from_env()?;
    mcpo_core::telemetry::init(settings.log_format);
    if mcpo_core::db::create_database_if_missing(&settings.database.url).await? {
        tracing::info!("database created");
    }
    mcpo_core::db::run_migrations(&settings.database.url)
        .await
        .context("applying migrations")?;
    let deps = Dependencies::connect(&settings, "mcpo-up").await?;

    let executor = mcpo_executor::build(&settings, deps.clone()).await?;
    if std::env::var_os("MCPO_EXECUTOR_PUBLIC_URL").is_none() {
        // One process: the executor's real address is the public one (also with port 0).
        settings.executor_public_url = format!("http://{}", executor.addr());
    }
    let registry = mcpo_registry::build(&settings, deps.clone())?;
    let publisher = mcpo_publisher::build(&settings, deps.clone()).await?;

    let addrs = [registry.addr(), executor.addr(), publisher.addr()];
    let servers = [
        tokio::spawn(registry.run_until_stopped()),
        tokio::spawn(executor.run_until_stopped()),
        tokio::spawn(publisher.run_until_stopped()),
    ];
    // actix starts serving when its future first runs: print the URLs only
    // once every service answers, so they work the moment they are shown.
    for addr in addrs {
        wait_until_serving(addr).await?;
    }
    if demo {
        register_demo(addrs[0]).await?;
    }
    use std::io::Write;
    println!("MCPO is running");
    println!("  registry   http://{}/api/v1/mcpo/services", addrs[0]);
    println!(
        "  executor   http://{}/tools/{{service}}/{{tool}}",
        addrs[1]
    );
    println!("  publisher  http://{}/openapi.json", addrs[2]);
    if demo {
        println!(
            "  demo       curl -X POST {}/tools/{DEMO_SERVICE}/echo -H 'content-type: application/json' -d '{{\"message\":\"hi\"}}'",
            settings.executor_public_url
        );
    }
    std::io::stdout().flush()?;
    for server in servers {
        server
            .await
            .context("a server task failed")?
            .context("a server failed")?;
    }
    Ok(())
}

async fn wait_until_serving(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for _ in 0..100 {
        let answered = client.get(format!("http://{addr}/healthz")).send().await;
        if answered.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!("the service on {addr} did not start serving")
}

/// Registers the fixture server (this very binary, `mcpo fixture stdio`) as
/// `demo` through the registry's API, unless a service of that name exists.
async fn register_demo(registry: std::net::SocketAddr) -> anyhow::Result<()> {
    let command = std::env::current_exe()?.to_string_lossy().into_owned();
    let body = serde_json::json!({
        "name": DEMO_SERVICE,
        "description": "MCPO's fixture MCP server: echo, add, fail, slow",
        "transport": { "type": "stdio", "command": command, "args": ["fixture", "stdio"] },
    });
    let response = reqwest::Client::new()
        .post(format!("http://{registry}/api/v1/mcpo/services"))
        .json(&body)
        .send()
        .await?;
    match response.status().as_u16() {
        201 => tracing::info!("demo service registered"),
        409 => tracing::info!("demo service already registered"),
        status => anyhow::bail!(
            "registering the demo failed ({status}): {}",
            response.text().await?
        ),
    }
    Ok(())
}
