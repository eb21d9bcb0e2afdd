//! A local AWS for tests: PyPI's `moto` server (`moto[server]` in
//! `scripts/test-requirements.txt`), one process per test on a port of its
//! own, killed on drop. Its state is in memory, so each test starts empty;
//! tests still use buckets named after a fresh uuid, which keeps a shared
//! server safe too.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use mcpo_core::aws::{self, AwsSettings};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::eventually::eventually;

/// The region every test client uses; moto accepts any.
pub const REGION: &str = "us-east-1";

/// Bounds only how long a broken install may hang a test, not a wait for
/// an event: the port is read as soon as moto prints it.
const STARTUP_BOUND: Duration = Duration::from_secs(60);

fn moto_server() -> PathBuf {
    let tools = std::env::var("MCPO_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/mcpo-tools")
        });
    tools.join("venv/bin/moto_server")
}

/// A bucket name of a test's own.
pub fn unique_bucket() -> String {
    format!("mcpo-{}", uuid::Uuid::new_v4().simple())
}

/// Settings for an AWS that cannot be reached (a port nothing listens on),
/// signing with `secret_key`, so a test can see the secret is never shown.
pub fn unreachable_aws(secret_key: &str) -> AwsSettings {
    AwsSettings::new(
        Some(REGION.into()),
        Some(format!("http://127.0.0.1:{}", crate::net::closed_port())),
        Some("mcpo-test-key".into()),
        Some(secret_key.into()),
    )
    .expect("valid settings")
}

pub struct MotoServer {
    port: u16,
    // Dropping it kills moto (`kill_on_drop`).
    _process: Child,
}

impl MotoServer {
    /// Starts moto on a free port (port 0: the server says which one it
    /// got) and returns once it answers HTTP.
    pub async fn start() -> MotoServer {
        let program = moto_server();
        assert!(
            program.exists(),
            "{} is missing: run the README's test command, which installs moto[server]",
            program.display()
        );
        let mut process = Command::new(&program)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("moto_server starts");
        let stderr = process.stderr.take().expect("stderr is piped");
        let mut lines = BufReader::new(stderr).lines();
        let port = tokio::time::timeout(STARTUP_BOUND, async {
            let mut seen = Vec::new();
            while let Some(line) = lines.next_line().await.expect("moto's stderr is readable") {
                if let Some(port) = listening_port(&line) {
                    return port;
                }
                seen.push(line);
            }
            panic!("moto_server exited before listening:\n{}", seen.join("\n"))
        })
        .await
        .expect("moto_server prints its address");
        // moto logs every request to stderr: keep reading, or it blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let server = MotoServer {
            port,
            _process: process,
        };
        let client = reqwest::Client::new();
        let url = format!("{}/moto-api/", server.endpoint_url());
        eventually("moto answers HTTP", async || {
            client.get(&url).send().await.map(|_| ())
        })
        .await;
        server
    }

    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Settings reaching this server with fake credentials; set them on
    /// `Settings::aws` (never on the process environment: tests run in
    /// parallel in one process).
    pub fn aws_settings(&self) -> AwsSettings {
        AwsSettings::new(
            Some(REGION.into()),
            Some(self.endpoint_url()),
            Some("testing".into()),
            Some("testing".into()),
        )
        .expect("valid settings")
    }

    pub async fn s3_client(&self) -> aws_sdk_s3::Client {
        let settings = self.aws_settings();
        aws::s3_client(&settings, &aws::sdk_config(&settings).await)
    }

    pub async fn create_bucket(&self, bucket: &str) {
        self.s3_client()
            .await
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("moto creates the bucket");
    }

    /// Every key in `bucket` under `prefix`, in S3's (lexical) order.
    pub async fn object_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, String> {
        let client = self.s3_client().await;
        let mut keys = Vec::new();
        let mut pages = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_sdk_s3::error::DisplayErrorContext(e).to_string())?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }

    pub async fn object(&self, bucket: &str, key: &str) -> Vec<u8> {
        let output = self
            .s3_client()
            .await
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "getting {key}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            });
        let body: ByteStream = output.body;
        body.collect().await.expect("the body reads").to_vec()
    }
}

/// The port of werkzeug's ` * Running on http://127.0.0.1:PORT` line.
fn listening_port(line: &str) -> Option<u16> {
    let rest = line.split("Running on http://").nth(1)?;
    let (_host, after) = rest.split_once(':')?;
    // Only the digits: the line may end in a colour code.
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_werkzeug_banner() {
        assert_eq!(
            super::listening_port(" * Running on http://127.0.0.1:46759"),
            Some(46759)
        );
        assert_eq!(
            super::listening_port(" * Running on http://127.0.0.1:8000\u{1b}[0m"),
            Some(8000)
        );
        assert_eq!(super::listening_port("Press CTRL+C to quit"), None);
    }
}
