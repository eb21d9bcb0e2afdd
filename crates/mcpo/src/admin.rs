//! Operator commands that work on the database directly, without the HTTP
//! API: bootstrapping the first API key, and re-sealing secrets after a key
//! rotation. They read the same settings as the services.

use anyhow::Context;
use mcpo_core::auth::Caller;
use mcpo_core::secrets::SecretKeyring;
use mcpo_core::Settings;
use mcpo_registry::api_keys::{self, CreateApiKey};

/// `mcpo api-key create`: the way in for a deployment that has no token
/// issuer yet (or for a first admin key). Prints the key once.
pub async fn create_api_key(
    name: String,
    permissions: Vec<String>,
    expires_in_days: Option<u32>,
) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let pool = mcpo_core::db::build_pool(&settings.database, "mcpo-cli")?;
    let created = api_keys::create(
        &pool,
        &Caller::system(&operator()),
        CreateApiKey {
            name,
            permissions,
            expires_in_days,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!(mcpo_core::ApiError::from(e).message))?;
    println!("{}", created.key);
    eprintln!(
        "API key `{}` ({}) created with {}; it is not shown again.",
        created.api_key.name,
        created.api_key.id,
        created.api_key.permissions.join(", ")
    );
    Ok(())
}

/// `mcpo secrets reseal`: after putting a new key first in
/// `MCPO_SECRET_KEYS` (old ones kept after it), seals every stored secret
/// with the new key; the old key can then be removed.
pub async fn reseal() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let keys = settings
        .secret_keys
        .as_ref()
        .context("MCPO_SECRET_KEYS is not set")?;
    let pool = mcpo_core::db::build_pool(&settings.database, "mcpo-cli")?;
    let registry = mcpo_registry::Registry::new(
        &settings,
        pool,
        std::sync::Arc::new(tokio::sync::Notify::new()),
    );
    let resealed = registry
        .reseal_secrets(&Caller::system(&operator()))
        .await
        .map_err(|e| anyhow::anyhow!(mcpo_core::ApiError::from(e).message))?;
    println!(
        "{resealed} service(s) resealed with key `{}`",
        keys.active_id()
    );
    Ok(())
}

/// `mcpo secrets new-key`: a fresh key entry for `MCPO_SECRET_KEYS`.
pub fn new_key(id: &str) -> anyhow::Result<()> {
    // The id is checked the way the keyring will check it.
    let entry = format!("{id}:{}", SecretKeyring::generate_key());
    SecretKeyring::parse(&entry).map_err(|e| anyhow::anyhow!(e.to_string()))?;
    println!("{entry}");
    Ok(())
}

/// Who the audit trail names for CLI changes.
fn operator() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}
