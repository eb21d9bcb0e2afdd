//! Push targets: each new version of the platform document is delivered to
//! the configured destinations (`MCPO_PUBLISH_*`, each optional): files in a
//! directory, objects in S3, an API Gateway REST API (imported in overwrite
//! mode from `/openapi.aws.json`, then deployed to a stage).
//!
//! Serving never waits on a push: a rebuild only moves the publisher's
//! version forward, and a [`Pusher`] task delivers the current document in
//! the background, one loop per target so a slow or dead target delays no
//! other. Only the replica holding [`OPENAPI_PUSHER`] pushes; `openapi_pushes`
//! records every target's attempts and last error per version, so a replica
//! taking over (or restarting) pushes only what the target lacks. A failed
//! push is logged at warn and retried after a backoff doubling from
//! `MCPO_PUBLISH_RETRY_MIN_MS` to `MCPO_PUBLISH_RETRY_MAX_MS`; a newer version
//! supersedes an older one not yet through (the target gets the newest, and
//! never an older one over a newer). `GET /pushes` reports it all.

mod record;
mod target;

use std::sync::Arc;
use std::time::Duration;

use mcpo_core::aws::AwsSettings;
use mcpo_core::config::{PublishSettings, Settings};
use mcpo_core::db::DbPool;
use mcpo_core::leader::Leadership;
use mcpo_core::CoreError;
use serde::Serialize;
use tokio::sync::Mutex;

pub use record::{PushRecord, TargetReport};

use crate::published::Published;
use crate::publisher::Publisher;
use record::Claim;
use target::Target;

/// The advisory lock of the pusher, beside the keys in `mcpo_core::leader`.
pub const OPENAPI_PUSHER: i64 = 0x4d43_504f_0005;

/// How often a replica that does not push checks whether it should (the
/// pushing one died), and how often the pushing one looks again when idle.
const POLL: Duration = Duration::from_secs(1);
/// Bounds one push, so a target that accepts a connection and never answers
/// is retried instead of holding its loop forever.
const PUSH_TIMEOUT: Duration = Duration::from_secs(300);

pub struct Pusher {
    pool: DbPool,
    publisher: Arc<Publisher>,
    settings: PublishSettings,
    aws: AwsSettings,
}

impl Pusher {
    pub fn new(settings: &Settings, pool: DbPool, publisher: Arc<Publisher>) -> Pusher {
        Pusher {
            pool,
            publisher,
            settings: settings.publish.clone(),
            aws: settings.aws.clone(),
        }
    }

    /// What `GET /pushes` reads.
    pub fn status(&self) -> PushStatus {
        PushStatus {
            pool: self.pool.clone(),
            targets: target::names(&self.settings),
        }
    }

    /// Runs until the task is aborted; returns at once without targets. The
    /// loops run in this one task (not spawned), so aborting it stops them
    /// all. AWS clients are built here rather than at start, since finding
    /// the region may ask the instance metadata service.
    pub async fn run(self) {
        let targets = Target::connect(&self.settings, &self.aws).await;
        for target in &targets {
            tracing::info!(destination = %target.name(), "new document versions are pushed here");
        }
        if targets.is_empty() {
            return;
        }
        let leadership = Mutex::new(Leadership::new(self.pool.clone(), OPENAPI_PUSHER));
        let loops = targets.iter().map(|target| self.serve(target, &leadership));
        futures::future::join_all(loops).await;
    }

    /// Keeps one target at the current version.
    async fn serve(&self, target: &Target, leadership: &Mutex<Leadership>) {
        let name = target.name();
        let mut versions = self.publisher.versions();
        let mut backoff = self.settings.retry_min;
        // The version this target is known to have (or to have a newer one than).
        let mut settled: Option<i64> = None;
        loop {
            if !leadership.lock().await.hold().await {
                tokio::time::sleep(POLL).await;
                continue;
            }
            let current = self.publisher.current();
            if settled == Some(current.version) {
                // A new version wakes the loop at once; the poll keeps the
                // lock checked.
                let _ = tokio::time::timeout(POLL, versions.changed()).await;
                continue;
            }
            match self.attempt(target, &name, &current).await {
                Ok(()) => {
                    settled = Some(current.version);
                    backoff = self.settings.retry_min;
                }
                Err(()) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.settings.retry_max);
                }
            }
        }
    }

    /// Pushes `published` unless the target has it (or a newer one); the
    /// outcome is on its row, and a failure in the log.
    async fn attempt(
        &self,
        target: &Target,
        name: &str,
        published: &Arc<Published>,
    ) -> Result<(), ()> {
        let version = published.version;
        let claim = async {
            let mut conn = self.pool.get().await?;
            record::claim(&mut conn, name, version).await
        };
        match claim.await {
            Ok(Claim::Push) => {}
            Ok(Claim::Done | Claim::Outdated) => return Ok(()),
            Err(e) => {
                tracing::warn!(destination = %name, version, error = %e, "cannot record a push");
                return Err(());
            }
        }
        let outcome = match tokio::time::timeout(PUSH_TIMEOUT, target.push(published)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {} s", PUSH_TIMEOUT.as_secs())),
        };
        let recorded = async {
            let mut conn = self.pool.get().await?;
            record::attempted(
                &mut conn,
                name,
                version,
                outcome.as_ref().err().map(String::as_str),
            )
            .await
        };
        if let Err(e) = recorded.await {
            tracing::warn!(destination = %name, version, error = %e, "cannot record a push");
            return Err(());
        }
        match outcome {
            Ok(()) => {
                tracing::info!(destination = %name, version, "document pushed");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(
                    destination = %name,
                    version,
                    error = %error,
                    "document not pushed; retrying with backoff"
                );
                Err(())
            }
        }
    }
}

/// What `GET /pushes` answers.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// The version this publisher serves.
    pub current_version: i64,
    /// Failed attempts over every target and version.
    pub failures: i64,
    /// One entry per configured target (none when nothing is configured).
    pub targets: Vec<TargetReport>,
}

/// The pool and the configured targets' names: enough to report.
pub struct PushStatus {
    pool: DbPool,
    targets: Vec<String>,
}

impl PushStatus {
    pub async fn report(&self, current_version: i64) -> Result<PushReport, CoreError> {
        let mut conn = self.pool.get().await?;
        let mut targets = Vec::with_capacity(self.targets.len());
        for target in &self.targets {
            targets.push(record::target_report(&mut conn, target).await?);
        }
        Ok(PushReport {
            current_version,
            failures: targets.iter().map(|r| r.failures).sum(),
            targets,
        })
    }
}
