//! API keys: `mcpo_{prefix}_{secret}`. The prefix is random but not secret
//! and finds the row; only a SHA-256 of the whole key is stored, so a leaked
//! database does not leak usable keys. Keys are 256-bit random, so a fast
//! hash is enough (there is nothing to brute-force, unlike passwords).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use sha2::{Digest, Sha256};

use super::permission::Grants;
use super::principal::{Principal, PrincipalKind};
use super::AuthError;
use crate::db::models::ApiKeyRow;
use crate::db::schema::api_keys;
use crate::db::DbPool;

pub const KEY_PREFIX: &str = "mcpo_";
const PREFIX_LEN: usize = 12;

/// A new key: what to store, and the key itself to show once.
pub struct MintedKey {
    pub key: String,
    pub prefix: String,
    pub hash: String,
}

pub fn mint() -> MintedKey {
    let mut random = [0u8; 32 + PREFIX_LEN / 2];
    aws_lc_rs::rand::fill(&mut random).expect("the system random source works");
    let prefix = hex::encode(&random[..PREFIX_LEN / 2]);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&random[PREFIX_LEN / 2..]);
    let key = format!("{KEY_PREFIX}{prefix}_{secret}");
    MintedKey {
        hash: hash(&key),
        prefix,
        key,
    }
}

pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The prefix of something shaped like an MCPO key.
pub fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == PREFIX_LEN
        && prefix.bytes().all(|b| b.is_ascii_hexdigit())
        && !secret.is_empty())
    .then_some(prefix)
}

/// Checks keys against Postgres, remembering good ones for `ttl` (or until
/// they expire): a revoked
/// key stops working everywhere within `ttl` (at once in the registry, which
/// forgets it when revoking).
pub struct ApiKeys {
    pool: DbPool,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Principal, Instant)>>,
}

impl ApiKeys {
    pub fn new(pool: DbPool, ttl: Duration) -> ApiKeys {
        ApiKeys {
            pool,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub async fn verify(&self, key: &str) -> Result<Principal, AuthError> {
        let refused = || {
            AuthError::InvalidToken("the API key is not valid (unknown, revoked or expired)".into())
        };
        let prefix = prefix_of(key).ok_or_else(refused)?;
        let hashed = hash(key);
        if let Some((principal, until)) = self.cache.lock().expect("not poisoned").get(&hashed) {
            if Instant::now() < *until {
                return Ok(principal.clone());
            }
        }
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        let row: Option<ApiKeyRow> = api_keys::table
            .filter(api_keys::prefix.eq(prefix))
            .select(ApiKeyRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        let row = row.ok_or_else(refused)?;
        let matches = aws_lc_rs::constant_time::verify_slices_are_equal(
            row.key_hash.as_bytes(),
            hashed.as_bytes(),
        )
        .is_ok();
        let now = Utc::now();
        if !matches || row.revoked_at.is_some() || row.expires_at.is_some_and(|at| at <= now) {
            return Err(refused());
        }
        let principal = Principal {
            subject: format!("api-key:{}", row.name),
            kind: PrincipalKind::ApiKey { id: row.id },
            grants: Grants::new(row.permissions),
        };
        let mut cache = self.cache.lock().expect("not poisoned");
        // Bounded: expired entries go first, and a cache this full means a flood.
        if cache.len() >= 10_000 {
            let now = Instant::now();
            cache.retain(|_, (_, until)| now < *until);
            if cache.len() >= 10_000 {
                cache.clear();
            }
        }
        // Trusted until the cache time passes, or the key expires if sooner.
        let left = row
            .expires_at
            .and_then(|at| (at - now).to_std().ok())
            .map_or(self.ttl, |left| left.min(self.ttl));
        cache.insert(hashed, (principal.clone(), Instant::now() + left));
        Ok(principal)
    }

    /// Forgets every cached key (after a revocation here).
    pub fn forget_all(&self) {
        self.cache.lock().expect("not poisoned").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_have_a_findable_prefix_and_differ() {
        let a = mint();
        let b = mint();
        assert_ne!(a.key, b.key);
        assert_eq!(prefix_of(&a.key), Some(a.prefix.as_str()));
        assert_eq!(a.hash, hash(&a.key));
        assert!(!a.hash.contains(&a.key));
        assert_eq!(prefix_of("mcpo_short_x"), None);
        assert_eq!(prefix_of("eyJhbGciOi.x.y"), None);
    }
}
