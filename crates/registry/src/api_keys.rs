//! API keys for machine callers that cannot do OAuth: created by admins,
//! shown once, stored hashed, scoped to permissions, expiring, revocable.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use mcpo_core::auth::api_key;
use mcpo_core::auth::permission::is_known_grant;
use mcpo_core::auth::{Caller, Grants};
use mcpo_core::db::models::ApiKeyRow;
use mcpo_core::db::schema::api_keys;
use mcpo_core::db::DbPool;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit::{self, AuditRecord};
use crate::error::RegistryError;

const MAX_NAME_LEN: usize = 64;
const MAX_PERMISSIONS: usize = 32;
const MAX_DAYS: u32 = 3650;

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// What the key is for, e.g. `billing-batch`; 1 to 64 characters.
    #[schema(min_length = 1, max_length = 64, pattern = "^[^\\x00]+$")]
    pub name: String,
    /// Permissions the key carries (`registry:read`, `tools:invoke`,
    /// `tools:invoke:{service}`, …); at most what the creator holds.
    #[schema(min_items = 1, max_items = 32, inline, value_type = Vec<GrantName>)]
    pub permissions: Vec<String>,
    /// Days until the key stops working; none: until revoked.
    #[serde(default, deserialize_with = "whole_days")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<u32>,
}

/// JSON Schema counts `30.0` as an integer, so it is read as one.
fn whole_days<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    let days = Option::<f64>::deserialize(deserializer)?;
    match days {
        None => Ok(None),
        Some(d) if d.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&d) => {
            Ok(Some(d as u32))
        }
        Some(d) => Err(serde::de::Error::custom(format!(
            "expires_in_days must be a whole number of days, not {d}"
        ))),
    }
}

/// A permission name, as a key may carry it.
#[derive(utoipa::ToSchema)]
#[schema(
    value_type = String,
    pattern = "^(registry:(read|write|admin)|tools:invoke(:[a-z0-9][a-z0-9_-]{0,63})?|openapi:read)$"
)]
#[allow(dead_code)]
struct GrantName(String);

/// An API key as listed: never the key itself.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    /// The key's visible start (`mcpo_{prefix}_…`), to tell keys apart.
    pub prefix: String,
    pub permissions: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The answer to creating a key: the only time the key is shown.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    /// Send it as `Authorization: Bearer <key>` or `X-Api-Key: <key>`.
    pub key: String,
    #[serde(flatten)]
    pub api_key: ApiKeyView,
}

impl From<ApiKeyRow> for ApiKeyView {
    fn from(row: ApiKeyRow) -> Self {
        ApiKeyView {
            id: row.id,
            name: row.name,
            prefix: row.prefix,
            permissions: row.permissions,
            created_by: row.created_by,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        }
    }
}

impl CreateApiKey {
    fn validate(&self, caller: &Caller) -> Result<(), RegistryError> {
        let name = &self.name;
        if name.is_empty() || name.chars().count() > MAX_NAME_LEN || name.contains('\0') {
            return Err(RegistryError::invalid(
                "name",
                format!("must have 1 to {MAX_NAME_LEN} characters, without NUL"),
            ));
        }
        if self.permissions.is_empty() || self.permissions.len() > MAX_PERMISSIONS {
            return Err(RegistryError::invalid(
                "permissions",
                format!("must list 1 to {MAX_PERMISSIONS} permissions"),
            ));
        }
        if let Some((i, unknown)) = self
            .permissions
            .iter()
            .enumerate()
            .find(|(_, p)| !is_known_grant(p))
        {
            return Err(RegistryError::invalid(
                format!("permissions[{i}]"),
                format!(
                    "`{}` is not a permission MCPO knows",
                    unknown.replace('\0', "")
                ),
            ));
        }
        if !caller
            .principal
            .grants
            .covers(&Grants::new(self.permissions.clone()))
        {
            return Err(RegistryError::invalid(
                "permissions",
                "may only hold permissions the creator has",
            ));
        }
        if self
            .expires_in_days
            .is_some_and(|days| !(1..=MAX_DAYS).contains(&days))
        {
            return Err(RegistryError::invalid(
                "expires_in_days",
                format!("must be between 1 and {MAX_DAYS}"),
            ));
        }
        Ok(())
    }
}

pub async fn create(
    pool: &DbPool,
    caller: &Caller,
    request: CreateApiKey,
) -> Result<CreatedApiKey, RegistryError> {
    request.validate(caller)?;
    let minted = api_key::mint();
    let row = ApiKeyRow {
        id: Uuid::now_v7(),
        name: request.name,
        prefix: minted.prefix.clone(),
        key_hash: minted.hash.clone(),
        permissions: request.permissions,
        created_by: caller.actor.subject.clone(),
        created_at: Utc::now(),
        expires_at: request
            .expires_in_days
            .map(|days| Utc::now() + chrono::Duration::days(days.into())),
        revoked_at: None,
    };
    let mut conn = pool.get().await?;
    let stored = conn
        .transaction(async |conn| {
            let stored: ApiKeyRow = diesel::insert_into(api_keys::table)
                .values(&row)
                .returning(ApiKeyRow::as_returning())
                .get_result(conn)
                .await?;
            audit::record(
                conn,
                &AuditRecord {
                    actor: &caller.actor,
                    action: "api_key.created",
                    target: &stored.id.to_string(),
                    details: serde_json::json!({
                        "name": stored.name,
                        "permissions": stored.permissions,
                        "expires_at": stored.expires_at,
                    }),
                },
            )
            .await?;
            Ok::<_, RegistryError>(stored)
        })
        .await?;
    Ok(CreatedApiKey {
        key: minted.key,
        api_key: stored.into(),
    })
}

pub async fn list(pool: &DbPool) -> Result<Vec<ApiKeyView>, RegistryError> {
    let rows: Vec<ApiKeyRow> = api_keys::table
        .select(ApiKeyRow::as_select())
        .order(api_keys::created_at.desc())
        .load(&mut *pool.get().await?)
        .await?;
    Ok(rows.into_iter().map(ApiKeyView::from).collect())
}

/// Revokes a key; revoking a revoked key changes nothing.
pub async fn revoke(pool: &DbPool, caller: &Caller, id: Uuid) -> Result<ApiKeyView, RegistryError> {
    let mut conn = pool.get().await?;
    conn.transaction(async |conn| {
        let row: ApiKeyRow = api_keys::table
            .find(id)
            .select(ApiKeyRow::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()?
            .ok_or(RegistryError::ApiKeyNotFound(id))?;
        if row.revoked_at.is_some() {
            return Ok(row.into());
        }
        let revoked: ApiKeyRow = diesel::update(api_keys::table.find(id))
            .set(api_keys::revoked_at.eq(Utc::now()))
            .returning(ApiKeyRow::as_returning())
            .get_result(conn)
            .await?;
        audit::record(
            conn,
            &AuditRecord {
                actor: &caller.actor,
                action: "api_key.revoked",
                target: &id.to_string(),
                details: serde_json::json!({ "name": revoked.name }),
            },
        )
        .await?;
        Ok(revoked.into())
    })
    .await
}
