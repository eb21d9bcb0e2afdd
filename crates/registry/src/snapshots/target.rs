//! Where snapshots are written: files under a directory, or S3 objects.

use std::path::{Path, PathBuf};

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use mcpo_core::aws::{self, AwsSettings, S3Location};
use mcpo_core::config::ConfigStore;

pub enum Target {
    Dir(PathBuf),
    S3 {
        client: aws_sdk_s3::Client,
        location: S3Location,
    },
}

impl Target {
    /// The store `store` names; an S3 client is built once, here.
    pub async fn connect(store: &ConfigStore, settings: &AwsSettings) -> Target {
        match store {
            ConfigStore::Dir(path) => Target::Dir(path.clone()),
            ConfigStore::S3(location) => {
                let config = aws::sdk_config(settings).await;
                Target::S3 {
                    client: aws::s3_client(settings, &config),
                    location: location.clone(),
                }
            }
        }
    }

    /// Writes `body` at `key` (relative to the root), replacing what was
    /// there. The error is a message fit for logs and the status report
    /// (the SDK's errors carry no credentials).
    pub async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), String> {
        match self {
            Target::Dir(root) => write_file(&root.join(key), &body)
                .await
                .map_err(|e| format!("writing {}: {e}", root.join(key).display())),
            Target::S3 { client, location } => client
                .put_object()
                .bucket(&location.bucket)
                .key(location.key(key))
                .content_type("application/json")
                .body(ByteStream::from(body))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    format!(
                        "putting s3://{}/{}: {}",
                        location.bucket,
                        location.key(key),
                        DisplayErrorContext(&e)
                    )
                }),
        }
    }
}

/// Writes through a temporary file and a rename, so a reader sees the old
/// file or the new one, never half of one.
async fn write_file(path: &Path, body: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let temporary = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    tokio::fs::write(&temporary, body).await?;
    if let Err(e) = tokio::fs::rename(&temporary, path).await {
        let _ = tokio::fs::remove_file(&temporary).await;
        return Err(e);
    }
    Ok(())
}
