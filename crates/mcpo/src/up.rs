//! `mcpo up`: everything a newcomer needs, in one process.

use anyhow::Context;
use mcpo_core::auth::Caller;
use mcpo_core::secrets::SecretKeyring;
use mcpo_core::server::Dependencies;
use mcpo_core::Settings;

pub const DEMO_SERVICE: &str = "demo";

pub async fn up(demo: bool) -> anyhow::Result<()> {
    let mut settings = Settings::from_env()?;
    mcpo_core::telemetry::init(settings.log_format);
    mcpo_core::server::protect_process();
    let key_file = match settings.secret_keys {
        Some(_) => None,
        None => {
            let (keys, file) = local_secret_keys()?;
            settings.secret_keys = Some(keys);
            Some(file)
        }
    };
    let demo_command = std::env::current_exe()?.to_string_lossy().into_owned();
    if demo {
        // The demo runs this very binary; nothing else is added to the allowlist.
        settings.stdio = settings
            .stdio
            .clone()
            .with(demo_command.clone(), vec!["fixture".into(), "stdio".into()]);
    }
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
        register_demo(&settings, &deps, demo_command).await?;
    }
    use std::io::Write;
    println!("MCPO is running");
    println!("  registry   http://{}/api/v1/mcpo/services", addrs[0]);
    println!(
        "  executor   http://{}/tools/{{service}}/{{tool}}",
        addrs[1]
    );
    println!("  publisher  http://{}/openapi.json", addrs[2]);
    println!("  auth       {}", deps.auth.describe());
    if let Some(file) = key_file {
        println!(
            "  secrets    sealed with the local key in {}",
            file.display()
        );
    }
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
/// `demo`, unless a service of that name exists. Done in-process as MCPO
/// itself, so it works whatever the auth mode (and is audited as `mcpo up`).
async fn register_demo(
    settings: &Settings,
    deps: &Dependencies,
    command: String,
) -> anyhow::Result<()> {
    let registry = mcpo_registry::Registry::new(
        settings,
        deps.pool.clone(),
        std::sync::Arc::new(tokio::sync::Notify::new()),
    );
    let request = mcpo_registry::services::RegisterService {
        name: DEMO_SERVICE.into(),
        description: Some("MCPO's fixture MCP server: echo, add, fail, slow".into()),
        transport: mcpo_core::domain::TransportConfig::Stdio {
            command,
            args: vec!["fixture".into(), "stdio".into()],
            env: Default::default(),
        },
        call_timeout_secs: None,
        session_pool_size: None,
        session_scope: None,
    };
    match registry
        .register(request, &Caller::system("mcpo up --demo"))
        .await
    {
        Ok(_) => tracing::info!("demo service registered"),
        Err(mcpo_registry::error::RegistryError::NameTaken(_)) => {
            tracing::info!("demo service already registered")
        }
        Err(e) => anyhow::bail!("registering the demo failed: {e}"),
    }
    Ok(())
}

/// Without `MCPO_SECRET_KEYS`, `mcpo up` keeps a key of its own in the user's
/// data directory (created once, readable by the user only), so stored
/// secrets survive restarts. Deployments set `MCPO_SECRET_KEYS`.
fn local_secret_keys() -> anyhow::Result<(SecretKeyring, std::path::PathBuf)> {
    let dir = std::env::var_os("XDG_DATA_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".local/share")))
        .context("neither XDG_DATA_HOME nor HOME is set; set MCPO_SECRET_KEYS")?
        .join("mcpo");
    let file = dir.join("secret-keys");
    if !file.exists() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .with_context(|| format!("creating {}", file.display()))?;
        writeln!(out, "local:{}", SecretKeyring::generate_key())?;
    }
    let spec =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let keys = SecretKeyring::parse(spec.trim())
        .with_context(|| format!("the key in {} is unusable", file.display()))?;
    Ok((keys, file))
}
