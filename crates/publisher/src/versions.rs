//! Published versions of the platform document, kept in Postgres.

use std::io::Write;

use diesel::expression::AsExpression;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Jsonb;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use mcpo_core::db::schema::openapi_documents;
use mcpo_core::events::{Event, EventEnvelope, OpenapiPublished};
use mcpo_core::{outbox, CoreError};
use serde_json::Value;

/// Serializes version numbering between publisher replicas.
const VERSION_LOCK: i64 = 0x4d43_504f_0002;

/// What a rebuild made, for [`record`].
pub struct Built<'h> {
    /// The document's hash, its version number aside.
    pub hash: &'h str,
    pub service_count: usize,
    pub path_count: usize,
}

/// Stores the document as a new version, unless the latest version has its
/// hash: `document` renders it with a version number (in `info.version`).
/// Only the latest `kept` versions stay stored. Returns the version and
/// whether it is new; a new one is announced with `openapi.published`.
pub async fn record(
    conn: &mut AsyncPgConnection,
    built: Built<'_>,
    kept: i64,
    document: impl FnOnce(i64) -> Vec<u8> + Send,
) -> Result<(i64, bool), CoreError> {
    let Built {
        hash,
        service_count,
        path_count,
    } = built;
    conn.transaction(async |conn| {
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
        diesel::insert_into(openapi_documents::table)
            .values((
                openapi_documents::version.eq(version),
                openapi_documents::content_hash.eq(hash),
                openapi_documents::document.eq(JsonText(document(version))),
            ))
            .execute(conn)
            .await?;
        diesel::delete(
            openapi_documents::table.filter(openapi_documents::version.le(version - kept)),
        )
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
    .await
}

/// JSON already rendered, sent as `jsonb` without parsing it into a tree
/// to serialize it again.
#[derive(Debug, AsExpression)]
#[diesel(sql_type = Jsonb)]
struct JsonText(Vec<u8>);

impl ToSql<Jsonb, Pg> for JsonText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        // jsonb's binary input: a format version byte, then the text.
        out.write_all(&[1])?;
        out.write_all(&self.0)?;
        Ok(IsNull::No)
    }
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
