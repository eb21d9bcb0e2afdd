//! Published versions of the platform document, kept in Postgres.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use mcpo_core::db::schema::openapi_documents;
use mcpo_core::events::{Event, EventEnvelope, OpenapiPublished};
use mcpo_core::{outbox, CoreError};
use serde_json::Value;

/// Serializes version numbering between publisher replicas.
const VERSION_LOCK: i64 = 0x4d43_504f_0002;

/// Gives `doc` its version number (in `info.version`) and stores it, unless
/// it is the same as the latest version: `hash` is its canonical hash
/// without the number (`published::prepare` makes both). Returns the
/// version and whether it is new; a new one is announced with
/// `openapi.published`.
pub async fn record(
    conn: &mut AsyncPgConnection,
    doc: &mut Value,
    hash: &str,
    service_count: usize,
) -> Result<(i64, bool), CoreError> {
    let path_count = doc["paths"].as_object().map_or(0, |p| p.len());
    let (version, new) = conn
        .transaction(async |conn| {
            diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                .bind::<diesel::sql_types::BigInt, _>(VERSION_LOCK)
                .execute(conn)
                .await?;
            let latest: Option<(i64, String)> = openapi_documents::table
                .order(openapi_documents::version.desc())
                .select((openapi_documents::version, openapi_documents::content_hash))
                .first(conn)
                .await
                .optional()?;
            if let Some((version, latest_hash)) = &latest {
                if latest_hash == hash {
                    return Ok::<_, CoreError>((*version, false));
                }
            }
            let version = latest.map_or(1, |(v, _)| v + 1);
            // Numbered in place, not in a copy: the tree is large.
            doc["info"]["version"] = Value::String(version.to_string());
            diesel::insert_into(openapi_documents::table)
                .values((
                    openapi_documents::version.eq(version),
                    openapi_documents::content_hash.eq(hash),
                    openapi_documents::document.eq(&*doc),
                ))
                .execute(conn)
                .await?;
            let event = EventEnvelope::new(Event::OpenapiPublished(OpenapiPublished {
                version,
                content_hash: hash.to_owned(),
                service_count,
                path_count,
            }));
            outbox::enqueue(conn, &[event]).await?;
            Ok((version, true))
        })
        .await?;
    doc["info"]["version"] = Value::String(version.to_string());
    Ok((version, new))
}

/// A stored version, if there is one.
pub async fn load(conn: &mut AsyncPgConnection, version: i64) -> Result<Option<Value>, CoreError> {
    Ok(openapi_documents::table
        .find(version)
        .select(openapi_documents::document)
        .first(conn)
        .await
        .optional()?)
}
