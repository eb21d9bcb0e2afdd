//! AWS access shared by everything that talks to AWS (the registry's config
//! snapshots, the publisher's push targets): one way to read region,
//! endpoint and credentials, and to build SDK clients from them.
//!
//! Settings left unset fall back to the SDK's standard chain (`AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, profiles, web identity, container and instance
//! roles), so a deployment on AWS needs no MCPO-specific variable. Explicit
//! credentials exist for tests (moto) and for hosts outside AWS; being
//! settings rather than process environment, two of them can differ within
//! one process.

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use secrecy::{ExposeSecret, SecretString};

use crate::error::CoreError;

/// The region when neither the settings nor the standard chain name one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// How MCPO reaches AWS (or an S3-compatible endpoint).
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// `None`: the standard chain, then [`DEFAULT_REGION`].
    pub region: Option<String>,
    /// Another endpoint than AWS's (moto, MinIO, LocalStack); S3 is then
    /// addressed path-style, since such endpoints have no per-bucket host names.
    pub endpoint_url: Option<String>,
    /// With `secret_access_key`: these credentials instead of the standard chain.
    pub access_key_id: Option<String>,
    /// Never logged: `SecretString` prints as redacted.
    pub secret_access_key: Option<SecretString>,
}

impl AwsSettings {
    /// Checks what was read from the environment (`MCPO_AWS_*`); empty strings count as unset.
    pub fn new(
        region: Option<String>,
        endpoint_url: Option<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
    ) -> Result<AwsSettings, CoreError> {
        let present = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        let endpoint_url = present(endpoint_url);
        if let Some(endpoint) = &endpoint_url {
            let parsed = url::Url::parse(endpoint).map_err(|e| {
                CoreError::Config(format!("MCPO_AWS_ENDPOINT_URL is not a URL: {e}"))
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(CoreError::Config(
                    "MCPO_AWS_ENDPOINT_URL must be an http(s) URL".into(),
                ));
            }
        }
        let (access_key_id, secret_access_key) =
            match (present(access_key_id), present(secret_access_key)) {
                (Some(id), Some(secret)) => (Some(id), Some(SecretString::from(secret))),
                (None, None) => (None, None),
                _ => {
                    return Err(CoreError::Config(
                        "MCPO_AWS_ACCESS_KEY_ID and MCPO_AWS_SECRET_ACCESS_KEY go together".into(),
                    ))
                }
            };
        Ok(AwsSettings {
            region: present(region),
            endpoint_url,
            access_key_id,
            secret_access_key,
        })
    }
}

/// The SDK configuration the settings describe. Without an explicit region
/// the standard chain may ask the instance metadata service, so this can
/// take a moment off AWS; callers build it once and keep it.
pub async fn sdk_config(settings: &AwsSettings) -> SdkConfig {
    let region = match &settings.region {
        Some(region) => RegionProviderChain::first_try(Region::new(region.clone())),
        None => RegionProviderChain::default_provider().or_else(Region::new(DEFAULT_REGION)),
    };
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
    if let Some(endpoint) = &settings.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    if let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
        loader = loader.credentials_provider(Credentials::new(
            id,
            secret.expose_secret(),
            None,
            None,
            "mcpo-settings",
        ));
    }
    loader.load().await
}

/// An S3 client for `config`; path-style addressing with an endpoint override.
pub fn s3_client(settings: &AwsSettings, config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(settings.endpoint_url.is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// A place in S3: `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
}

impl S3Location {
    /// Parses `s3://bucket` or `s3://bucket/some/prefix`.
    pub fn parse(url: &str) -> Result<S3Location, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("`{url}` does not start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's bucket naming rules, enough to refuse what would be a path or a host.
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !valid_bucket {
            return Err(format!(
                "`{bucket}` is not an S3 bucket name (3 to 63 lowercase letters, digits, `-`, `.`)"
            ));
        }
        Ok(S3Location {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    /// The object key of `relative` under the prefix.
    pub fn key(&self, relative: &str) -> String {
        match self.prefix.as_str() {
            "" => relative.to_owned(),
            prefix => format!("{prefix}/{relative}"),
        }
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.prefix.as_str() {
            "" => write!(f, "s3://{}", self.bucket),
            prefix => write!(f, "s3://{}/{prefix}", self.bucket),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_locations() {
        let location = S3Location::parse("s3://mcpo-config/prod/snapshots/").unwrap();
        assert_eq!(location.bucket, "mcpo-config");
        assert_eq!(location.prefix, "prod/snapshots");
        assert_eq!(location.key("a.json"), "prod/snapshots/a.json");
        assert_eq!(location.to_string(), "s3://mcpo-config/prod/snapshots");
        let bare = S3Location::parse("s3://bucket").unwrap();
        assert_eq!((bare.prefix.as_str(), bare.key("a")), ("", "a".to_owned()));
        for bad in [
            "bucket/x",
            "s3://",
            "s3://A_B",
            "s3://-ab",
            "http://b/x",
            "s3://ab",
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_store_specs() {
        use crate::config::ConfigStore;
        assert_eq!(
            ConfigStore::parse("dir:/var/lib/mcpo").unwrap(),
            ConfigStore::Dir("/var/lib/mcpo".into())
        );
        let s3 = ConfigStore::parse("s3://mcpo-config/snapshots").unwrap();
        assert_eq!(s3.to_string(), "s3://mcpo-config/snapshots");
        for bad in ["dir:", "/var/lib/mcpo", "s3://x", "file:///tmp"] {
            assert!(ConfigStore::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_come_in_pairs_and_endpoints_are_urls() {
        assert!(AwsSettings::new(None, None, Some("id".into()), None).is_err());
        assert!(AwsSettings::new(None, Some("not a url".into()), None, None).is_err());
        assert!(AwsSettings::new(None, Some("ftp://x".into()), None, None).is_err());
        let settings = AwsSettings::new(
            Some(String::new()),
            Some("http://127.0.0.1:5000".into()),
            Some("id".into()),
            Some("very-secret".into()),
        )
        .unwrap();
        assert_eq!(settings.region, None);
        assert!(!format!("{settings:?}").contains("very-secret"));
    }
}
