//! The `openapi_pushes` rows: one per target and version.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use mcpo_core::db::schema::openapi_pushes;
use mcpo_core::CoreError;
use serde::Serialize;

/// Longest error message kept on a row.
const MAX_ERROR_LEN: usize = 2000;

/// Whether a version still has to go to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Push it: its row exists, and older unpushed rows are superseded.
    Push,
    /// The target has it already (pushed by this or another replica).
    Done,
    /// The target has a newer version: this one must not land over it.
    Outdated,
}

/// Decides whether `version` goes to `target`, and if so creates its row
/// and supersedes the older unpushed ones (they will never be pushed).
pub async fn claim(
    conn: &mut AsyncPgConnection,
    target: &str,
    version: i64,
) -> Result<Claim, CoreError> {
    conn.transaction(async |conn| {
        let newer_pushed: i64 = openapi_pushes::table
            .filter(openapi_pushes::target.eq(target))
            .filter(openapi_pushes::version.gt(version))
            .filter(openapi_pushes::pushed_at.is_not_null())
            .count()
            .get_result(conn)
            .await?;
        if newer_pushed > 0 {
            return Ok(Claim::Outdated);
        }
        diesel::insert_into(openapi_pushes::table)
            .values((
                openapi_pushes::target.eq(target),
                openapi_pushes::version.eq(version),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        let pushed_at: Option<DateTime<Utc>> = openapi_pushes::table
            .find((target, version))
            .select(openapi_pushes::pushed_at)
            .first(conn)
            .await?;
        if pushed_at.is_some() {
            return Ok(Claim::Done);
        }
        diesel::update(
            openapi_pushes::table
                .filter(openapi_pushes::target.eq(target))
                .filter(openapi_pushes::version.lt(version))
                .filter(openapi_pushes::pushed_at.is_null())
                .filter(openapi_pushes::superseded_by.is_null()),
        )
        .set((
            openapi_pushes::superseded_by.eq(version),
            openapi_pushes::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
        Ok::<_, CoreError>(Claim::Push)
    })
    .await
}

/// Counts the attempt; stamps `pushed_at`, or keeps the error.
pub async fn attempted(
    conn: &mut AsyncPgConnection,
    target: &str,
    version: i64,
    error: Option<&str>,
) -> Result<(), CoreError> {
    let row = diesel::update(openapi_pushes::table.find((target, version)));
    match error {
        None => {
            row.set((
                openapi_pushes::attempts.eq(openapi_pushes::attempts + 1),
                openapi_pushes::pushed_at.eq(diesel::dsl::now),
                openapi_pushes::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?
        }
        Some(error) => {
            let error: String = error.chars().take(MAX_ERROR_LEN).collect();
            row.set((
                openapi_pushes::attempts.eq(openapi_pushes::attempts + 1),
                openapi_pushes::last_error.eq(error),
                openapi_pushes::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?
        }
    };
    Ok(())
}

/// One version's push to one target.
#[derive(Debug, Clone, Serialize, Queryable, Selectable)]
#[diesel(table_name = openapi_pushes, check_for_backend(diesel::pg::Pg))]
pub struct PushRecord {
    pub version: i64,
    /// Attempts so far (failed ones, plus the successful one).
    pub attempts: i32,
    /// Why the last failed attempt failed (kept after a later success).
    pub last_error: Option<String>,
    /// A newer version started before this one got through: it never will.
    pub superseded_by: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub pushed_at: Option<DateTime<Utc>>,
}

/// What a target has received, and what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// `dir:/path`, `s3://bucket/prefix` or `apigateway:{rest api id}/{stage}`.
    pub target: String,
    /// The newest version the target has.
    pub pushed_version: Option<i64>,
    /// Failed attempts, all versions together.
    pub failures: i64,
    /// The newest version tried, pushed or not.
    pub latest: Option<PushRecord>,
}

pub async fn target_report(
    conn: &mut AsyncPgConnection,
    target: &str,
) -> Result<TargetReport, CoreError> {
    let (attempts, pushed): (Option<i64>, i64) = openapi_pushes::table
        .filter(openapi_pushes::target.eq(target))
        .select((
            diesel::dsl::sum(openapi_pushes::attempts),
            diesel::dsl::count(openapi_pushes::pushed_at),
        ))
        .first(conn)
        .await?;
    let pushed_version: Option<i64> = openapi_pushes::table
        .filter(openapi_pushes::target.eq(target))
        .filter(openapi_pushes::pushed_at.is_not_null())
        .select(diesel::dsl::max(openapi_pushes::version))
        .first(conn)
        .await?;
    let latest = openapi_pushes::table
        .filter(openapi_pushes::target.eq(target))
        .order(openapi_pushes::version.desc())
        .select(PushRecord::as_select())
        .first(conn)
        .await
        .optional()?;
    Ok(TargetReport {
        target: target.to_owned(),
        pushed_version,
        failures: attempts.unwrap_or(0) - pushed,
        latest,
    })
}
