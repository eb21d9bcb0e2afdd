//! OAuth2 access tokens (JWT) checked against the issuer's published keys.
//!
//! The keys come from the JWKS named by the issuer's OIDC discovery document.
//! They are cached; a token signed with a key we have not seen (the issuer
//! rotated) triggers a refetch, but at most once per `min_refresh`, so a flood
//! of tokens with made-up `kid`s cannot make us hammer the issuer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, RwLock};

use super::permission::Grants;
use super::principal::{Principal, PrincipalKind};
use super::AuthError;

/// Asymmetric algorithms only: with HMAC the "public" key would be the secret.
const ACCEPTED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer URL; discovery is at `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub audience: String,
    /// The claim holding permissions (Auth0: `permissions`); `scope` is read too.
    pub permissions_claim: String,
    pub leeway: Duration,
    /// How long fetched keys are used before they are fetched again.
    pub jwks_ttl: Duration,
    /// The least time between two fetches caused by unknown keys.
    pub min_refresh: Duration,
}

struct VerifyingKey {
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

#[derive(Default)]
struct KeySet {
    /// The `issuer` the discovery document declares: tokens must carry exactly it.
    issuer: Option<String>,
    keys: HashMap<String, VerifyingKey>,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
}

pub struct JwtVerifier {
    settings: OidcSettings,
    http: reqwest::Client,
    keys: RwLock<KeySet>,
    /// One fetch at a time; callers that waited reuse its result.
    fetching: Mutex<()>,
}

impl JwtVerifier {
    pub fn new(settings: OidcSettings) -> JwtVerifier {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a client without custom TLS builds");
        JwtVerifier {
            settings,
            http,
            keys: RwLock::new(KeySet::default()),
            fetching: Mutex::new(()),
        }
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = decode_header(token).map_err(|e| {
            AuthError::InvalidToken(match declared_alg(token) {
                Some(alg) => {
                    format!("tokens signed with `{alg}` are not accepted; use RS256 or ES256")
                }
                None => format!("the token is not a usable JWT: {}", describe(&e)),
            })
        })?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(AuthError::InvalidToken(format!(
                "tokens signed with {:?} are not accepted; use RS256 or ES256",
                header.alg
            )));
        }
        let kid = header.kid.clone().unwrap_or_default();
        let (issuer, claims) = {
            let keys = self.keys_with(&kid).await?;
            if keys.fetched_at.is_none() {
                return Err(AuthError::Unavailable(
                    "the issuer's signing keys could not be fetched yet".into(),
                ));
            }
            let key = match keys.keys.get(&kid) {
                Some(key) => key,
                None => {
                    return Err(AuthError::InvalidToken(if kid.is_empty() {
                        "the token names no signing key (`kid`)".into()
                    } else {
                        format!("the token is signed with an unknown key `{kid}`")
                    }))
                }
            };
            if !key.algorithms.contains(&header.alg) {
                return Err(AuthError::InvalidToken(format!(
                    "key `{kid}` does not sign with {:?}",
                    header.alg
                )));
            }
            let issuer = keys
                .issuer
                .clone()
                .unwrap_or_else(|| self.settings.issuer.clone());
            let mut validation = Validation::new(header.alg);
            validation.set_issuer(&[&issuer]);
            validation.set_audience(&[&self.settings.audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.validate_nbf = true;
            validation.leeway = self.settings.leeway.as_secs();
            let data = decode::<Map<String, Value>>(token, &key.key, &validation)
                .map_err(|e| AuthError::InvalidToken(describe(&e)))?;
            (issuer, data.claims)
        };
        let subject = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            _ => {
                return Err(AuthError::InvalidToken(
                    "the token's `sub` claim is not a string".into(),
                ))
            }
        };
        tracing::debug!(%issuer, %subject, "token accepted");
        Ok(Principal {
            subject,
            kind: PrincipalKind::User,
            grants: grants_of(&claims, &self.settings.permissions_claim),
        })
    }

    /// The key set, fetched first when it is stale or lacks `kid` (within the
    /// refresh rate limit).
    async fn keys_with(
        &self,
        kid: &str,
    ) -> Result<tokio::sync::RwLockReadGuard<'_, KeySet>, AuthError> {
        {
            let keys = self.keys.read().await;
            if !self.needs_fetch(&keys, kid) {
                return Ok(keys);
            }
        }
        let _fetching = self.fetching.lock().await;
        if self.needs_fetch(&*self.keys.read().await, kid) {
            // Callers arriving meanwhile wait on `fetching`, then see the result.
            match self.fetch().await {
                Ok(fetched) => *self.keys.write().await = fetched,
                Err(reason) => {
                    self.keys.write().await.attempted_at = Some(Instant::now());
                    let keys = self.keys.read().await;
                    tracing::warn!(issuer = %self.settings.issuer, %reason, "cannot fetch the issuer's keys");
                    // Stale keys still verify tokens signed with them.
                    if keys.keys.contains_key(kid) {
                        drop(keys);
                    } else {
                        return Err(AuthError::Unavailable(reason));
                    }
                }
            }
        }
        Ok(self.keys.read().await)
    }

    fn needs_fetch(&self, keys: &KeySet, kid: &str) -> bool {
        let stale = keys
            .fetched_at
            .is_none_or(|at| at.elapsed() >= self.settings.jwks_ttl);
        let may_retry = keys
            .attempted_at
            .is_none_or(|at| at.elapsed() >= self.settings.min_refresh);
        (stale || !keys.keys.contains_key(kid)) && may_retry
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let discovery: Value = self.get_json(&discovery_url).await?;
        let issuer = discovery
            .get("issuer")
            .and_then(Value::as_str)
            .ok_or("the discovery document has no `issuer`")?
            .to_owned();
        // OIDC Discovery §4.3: the document must be the configured issuer's.
        if issuer.trim_end_matches('/') != self.settings.issuer.trim_end_matches('/') {
            return Err(format!(
                "the discovery document names the issuer `{issuer}`, not the configured `{}`",
                self.settings.issuer
            ));
        }
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or("the discovery document has no `jwks_uri`")?;
        let jwks: Value = self.get_json(jwks_uri).await?;
        let mut keys = HashMap::new();
        for entry in jwks
            .get("keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // One key we cannot use must not hide the others.
            let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
                continue;
            };
            if let (Some(kid), Some(key)) = (jwk.common.key_id.clone(), verifying_key(&jwk)) {
                keys.insert(kid, key);
            }
        }
        tracing::info!(%issuer, keys = keys.len(), "fetched the issuer's signing keys");
        Ok(KeySet {
            issuer: Some(issuer),
            keys,
            fetched_at: Some(Instant::now()),
            attempted_at: Some(Instant::now()),
        })
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: {}", response.status()));
        }
        response.json().await.map_err(|e| format!("GET {url}: {e}"))
    }
}

/// The `alg` a header declares, read without the JWT library (which cannot
/// represent `none`), for the error message only.
fn declared_alg(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let alg = serde_json::from_slice::<Value>(&bytes)
        .ok()?
        .get("alg")?
        .as_str()?
        .to_owned();
    // Only short, plain names are echoed.
    (alg.len() <= 16 && alg.chars().all(|c| c.is_ascii_alphanumeric())).then_some(alg)
}

/// A signing key we accept, with the algorithms it may be used with. Keys for
/// encryption and symmetric keys are skipped.
fn verifying_key(jwk: &Jwk) -> Option<VerifyingKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let family: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        _ => return None,
    };
    // The JWK's `alg`, when given, restricts the key to that one algorithm.
    let declared = jwk.common.key_algorithm.map(|a| {
        serde_json::to_value(a)
            .ok()
            .and_then(|v| serde_json::from_value::<Algorithm>(v).ok())
    });
    let algorithms = match declared {
        Some(Some(alg)) if family.contains(&alg) => vec![alg],
        Some(_) => return None,
        None => family,
    };
    Some(VerifyingKey {
        key: DecodingKey::from_jwk(jwk).ok()?,
        algorithms,
    })
}

/// Permissions from the configured claim only (an array, or a space-separated
/// string such as `scope`): with some providers a client may ask for any
/// scope, so `scope` counts only when it is the claim an operator chose.
fn grants_of(claims: &Map<String, Value>, claim: &str) -> Grants {
    match claims.get(claim) {
        Some(Value::Array(items)) => {
            Grants::new(items.iter().filter_map(Value::as_str).map(str::to_owned))
        }
        Some(Value::String(text)) => Grants::new(text.split_whitespace().map(str::to_owned)),
        _ => Grants::default(),
    }
}

/// What went wrong, in words, without quoting the token.
fn describe(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match error.kind() {
        K::ExpiredSignature => "the token has expired".into(),
        K::ImmatureSignature => "the token is not valid yet (`nbf` is in the future)".into(),
        K::InvalidIssuer => "the token was issued by another issuer".into(),
        K::InvalidAudience => "the token is not meant for this API (audience)".into(),
        K::InvalidSignature => "the token's signature does not verify".into(),
        K::InvalidAlgorithm => "the token's algorithm does not match its key".into(),
        K::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        K::InvalidClaimFormat(claim) => format!("the token's `{claim}` claim has the wrong type"),
        K::Base64(_) | K::Json(_) | K::Utf8(_) | K::InvalidToken => "the token is malformed".into(),
        K::UnsupportedAlgorithm | K::InvalidAlgorithmName => {
            "the token's algorithm is not supported".into()
        }
        _ => "the token was refused".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_come_from_the_configured_claim_only() {
        let claims = serde_json::json!({
            "permissions": ["registry:read"],
            "scope": "openid tools:invoke",
        });
        let grants = grants_of(claims.as_object().unwrap(), "permissions");
        assert!(grants.allows(super::super::Permission::RegistryRead));
        assert!(!grants.allows(super::super::Permission::ToolsInvoke));
        let scoped = grants_of(claims.as_object().unwrap(), "scope");
        assert!(scoped.allows(super::super::Permission::ToolsInvoke));
        assert!(!scoped.allows(super::super::Permission::RegistryRead));
        let custom = serde_json::json!({ "https://mcpo/roles": "registry:admin" });
        assert!(grants_of(custom.as_object().unwrap(), "https://mcpo/roles")
            .allows(super::super::Permission::RegistryAdmin));
    }

    #[test]
    fn symmetric_and_encryption_keys_are_skipped() {
        let oct: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "oct", "kid": "h", "k": "c2VjcmV0"
        }))
        .unwrap();
        assert!(verifying_key(&oct).is_none());
        let enc: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "RSA", "kid": "e", "use": "enc", "n": "sXch", "e": "AQAB"
        }))
        .unwrap();
        assert!(verifying_key(&enc).is_none());
    }
}
