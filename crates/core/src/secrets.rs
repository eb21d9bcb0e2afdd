//! Encryption at rest of the secrets that registered MCP servers carry: the
//! `env` values of stdio servers and the `headers` values of HTTP servers.
//!
//! # Keys
//!
//! `MCPO_SECRET_KEYS` holds one or more AES-256 keys as
//! `id:base64key[,id:base64key...]`: an id of 1–32 characters of
//! `[A-Za-z0-9_-]` and the standard base64 of exactly 32 random bytes (for
//! example from `openssl rand -base64 32` or [`SecretKeyring::generate_key`]).
//! The first key is the *active* one and seals every new value; every listed key
//! can open. Ids are stored next to each value so that the right key is found
//! without trial decryption and so that an error can say which key is missing.
//!
//! # Format
//!
//! A sealed value is a single string that fits where the plaintext was:
//!
//! ```text
//! mcpo:v1:{key_id}:{base64url-no-pad(nonce(12) || ciphertext || tag(16))}
//! ```
//!
//! The cipher is AES-256-GCM with a fresh random 96-bit nonce per seal, so
//! sealing the same value twice gives different strings and equal secrets
//! cannot be spotted in a database dump. Random nonces are safe for about 2^32
//! seals per key; rotating keys resets that count long before it matters.
//!
//! # Why the context is authenticated (AAD)
//!
//! Each value is sealed together with the name of the field it belongs to
//! (`env:API_TOKEN`, `header:authorization`) as additional authenticated data.
//! The context is not stored, it must be supplied again to open. Without it,
//! someone able to write to the database but not holding the key could move a
//! sealed `Authorization` header of one field into another (say, an env
//! variable that a server logs on start-up) and have MCPO decrypt it there.
//! With it, a value opens only in the field it was sealed for; anything else is
//! [`SecretsError::Corrupt`]. The format version is part of the AAD too, so a
//! future format can never be mistaken for this one.
//!
//! # Rotation
//!
//! 1. Generate a new key and *prepend* it: `MCPO_SECRET_KEYS=new:...,old:...`.
//! 2. Restart every MCPO process; new values are now sealed with `new`, old
//!    ones still open with `old`.
//! 3. Run `mcpo secrets reseal`, which re-seals every stored value that
//!    [`SecretKeyring::needs_reseal`] reports (plaintext rows left from before
//!    encryption, or values sealed with a key other than the active one).
//! 4. Remove `old` from `MCPO_SECRET_KEYS` and restart again.
//!
//! A value whose key was removed too early fails with
//! [`SecretsError::UnknownKey`], naming the key to add back.
//!
//! # What leaves MCPO
//!
//! API answers, events and exports never show secrets, sealed or not: they
//! show [`redact_transport`], where every value is [`REDACTED`]. A PATCH that
//! sends such an answer back is merged with [`restore_redacted`] so that the
//! placeholder does not overwrite the stored secret.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use secrecy::zeroize::Zeroizing;

use crate::domain::TransportConfig;

/// What every secret value is replaced by wherever a transport is shown.
pub const REDACTED: &str = "[redacted]";

/// Marks a value as sealed, and names the format version.
const PREFIX: &str = "mcpo:v1:";

/// Domain separation of the AAD: ties a value to this format version as well
/// as to its field.
const AAD_PREFIX: &str = "mcpo:v1|";

const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
const MAX_KEY_ID_LEN: usize = 32;

/// Why a secret could not be sealed or opened. Messages never contain key
/// material or secret values.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("MCPO_SECRET_KEYS is invalid: {0}")]
    InvalidKeyring(String),
    #[error(
        "a stored secret was sealed with key `{id}`, which is not in MCPO_SECRET_KEYS; \
         add that key back"
    )]
    UnknownKey { id: String },
    #[error(
        "a stored secret could not be decrypted: it was altered, moved to another field, \
         or is not a value sealed by MCPO"
    )]
    Corrupt,
    #[error("the encryption library failed unexpectedly")]
    Crypto,
}

struct KeyEntry {
    id: String,
    key: LessSafeKey,
}

/// The AES-256-GCM keys of `MCPO_SECRET_KEYS`; the first one seals, all open.
///
/// Cloning is cheap (the keys are shared), so the keyring can sit in settings
/// and application state.
#[derive(Clone)]
pub struct SecretKeyring {
    /// Never empty: `parse` refuses a spec without keys.
    keys: Arc<[KeyEntry]>,
}

impl fmt::Debug for SecretKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKeyring")
            .field("active", &self.active_id())
            .field("ids", &self.ids())
            .finish_non_exhaustive()
    }
}

impl FromStr for SecretKeyring {
    type Err = SecretsError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        Self::parse(spec)
    }
}

impl SecretKeyring {
    /// Parses `id:base64key[,id:base64key...]`; the first key becomes the
    /// active one.
    ///
    /// Entries are referred to by id, or by position when the id itself is
    /// unusable, because a malformed entry may well be a pasted key.
    pub fn parse(spec: &str) -> Result<Self, SecretsError> {
        let invalid = |msg: String| SecretsError::InvalidKeyring(msg);
        if spec.trim().is_empty() {
            return Err(invalid(
                "no keys given; expected `id:base64key`, e.g. `k1:` followed by the output \
                 of `openssl rand -base64 32`"
                    .into(),
            ));
        }
        let mut keys: Vec<KeyEntry> = Vec::new();
        for (index, entry) in spec.split(',').enumerate() {
            let position = index + 1;
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(invalid(format!("entry {position} is empty (stray comma?)")));
            }
            let Some((id, encoded)) = entry.split_once(':') else {
                return Err(invalid(format!(
                    "entry {position} is not of the form `id:base64key`"
                )));
            };
            let (id, encoded) = (id.trim(), encoded.trim());
            if !is_valid_key_id(id) {
                return Err(invalid(format!(
                    "entry {position}: a key id must be 1-{MAX_KEY_ID_LEN} characters of \
                     A-Z, a-z, 0-9, `_` or `-`"
                )));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(invalid(format!("key id `{id}` is used more than once")));
            }
            // The decoder's own error names the offending byte, which would be
            // a piece of the key: say only that it failed.
            let bytes = Zeroizing::new(
                STANDARD
                    .decode(encoded)
                    .map_err(|_| invalid(format!("key `{id}` is not valid standard base64")))?,
            );
            if bytes.len() != KEY_LEN {
                return Err(invalid(format!(
                    "key `{id}` is {} bytes long; AES-256 needs exactly {KEY_LEN}",
                    bytes.len()
                )));
            }
            let unbound =
                UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SecretsError::Crypto)?;
            keys.push(KeyEntry {
                id: id.to_owned(),
                key: LessSafeKey::new(unbound),
            });
        }
        Ok(Self { keys: keys.into() })
    }

    /// A fresh random key, standard base64 of 32 bytes, ready to be put in
    /// `MCPO_SECRET_KEYS` after an id and a colon.
    ///
    /// # Panics
    ///
    /// If the operating system's random generator fails, which leaves no safe
    /// way to make a key.
    pub fn generate_key() -> String {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        aws_lc_rs::rand::fill(bytes.as_mut()).expect("the system random generator failed");
        STANDARD.encode(bytes.as_ref())
    }

    /// The id of the key that seals.
    pub fn active_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Every id, the active one first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    fn key(&self, id: &str) -> Option<&LessSafeKey> {
        self.keys.iter().find(|k| k.id == id).map(|k| &k.key)
    }

    /// Encrypts `plaintext` with the active key. `context` names the field the
    /// value belongs to; the same context is needed to open it.
    pub fn seal(&self, plaintext: &str, context: &str) -> Result<String, SecretsError> {
        let active = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| SecretsError::Crypto)?;
        let mut in_out = plaintext.as_bytes().to_vec();
        active
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(context)),
                &mut in_out,
            )
            .map_err(|_| SecretsError::Crypto)?;
        let mut payload = Vec::with_capacity(NONCE_LEN + in_out.len());
        payload.extend_from_slice(&nonce);
        payload.extend_from_slice(&in_out);
        Ok(format!(
            "{PREFIX}{}:{}",
            active.id,
            URL_SAFE_NO_PAD.encode(payload)
        ))
    }

    /// Decrypts a value made by [`seal`](Self::seal) with the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, SecretsError> {
        let (id, encoded) = split_sealed(sealed).ok_or(SecretsError::Corrupt)?;
        let key = self
            .key(id)
            .ok_or_else(|| SecretsError::UnknownKey { id: id.to_owned() })?;
        let payload = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| SecretsError::Corrupt)?;
        if payload.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretsError::Corrupt);
        }
        let (nonce, ciphertext) = payload.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretsError::Corrupt)?;
        let mut in_out = Zeroizing::new(ciphertext.to_vec());
        let len = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(context)),
                &mut in_out,
            )
            .map_err(|_| SecretsError::Corrupt)?
            .len();
        let plaintext = std::str::from_utf8(&in_out[..len]).map_err(|_| SecretsError::Corrupt)?;
        Ok(plaintext.to_owned())
    }

    /// Whether `value` claims to be sealed. A claim is enough: a value that
    /// looks sealed but does not open is an error, never silently taken as
    /// plaintext.
    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }

    /// The id of the key a sealed value names, if it is a well-formed one.
    pub fn sealed_key_id(value: &str) -> Option<&str> {
        split_sealed(value).map(|(id, _)| id)
    }

    /// A copy of `t` whose secret values are all sealed with the active key.
    ///
    /// Values sealed with another key are opened and sealed again, which is
    /// what rotation relies on. Values already sealed with the active key are
    /// kept as they are, but only after checking that they open in their
    /// field, so a stored transport never holds a value that cannot be used.
    ///
    /// Run [`TransportConfig::validate`] before sealing: a sealed value is
    /// longer than its plaintext.
    pub fn seal_transport(&self, t: &TransportConfig) -> Result<TransportConfig, SecretsError> {
        map_secrets(t, |context, value| {
            if !Self::is_sealed(value) {
                return self.seal(value, context);
            }
            let plaintext = Zeroizing::new(self.open(value, context)?);
            if Self::sealed_key_id(value) == Some(self.active_id()) {
                Ok(value.to_owned())
            } else {
                self.seal(&plaintext, context)
            }
        })
    }

    /// A copy of `t` with every sealed value decrypted. Values that are not
    /// sealed (rows stored before encryption) are returned as they are.
    pub fn open_transport(&self, t: &TransportConfig) -> Result<TransportConfig, SecretsError> {
        map_secrets(t, |context, value| {
            if Self::is_sealed(value) {
                self.open(value, context)
            } else {
                Ok(value.to_owned())
            }
        })
    }

    /// Whether [`seal_transport`](Self::seal_transport) would change `t`: some
    /// value is plaintext or sealed with a key other than the active one.
    pub fn needs_reseal(&self, t: &TransportConfig) -> bool {
        secret_entries(t).any(|(_, value)| Self::sealed_key_id(value) != Some(self.active_id()))
    }
}

/// `t` as it may be shown: every env and header value is [`REDACTED`], names
/// are kept so that a reader sees what is configured.
pub fn redact_transport(t: &TransportConfig) -> TransportConfig {
    map_secrets(t, |_, _| {
        Ok::<_, std::convert::Infallible>(REDACTED.to_owned())
    })
    .unwrap_or_else(|never| match never {})
}

/// Merges a transport sent back by a client (`new`) with the stored one
/// (`old`): a [`REDACTED`] value whose name `old` also has takes `old`'s value,
/// so a client can PATCH a transport it only ever saw redacted. Everything
/// else is `new`'s. Transports of different kinds share nothing.
///
/// Header names match case-insensitively, as HTTP does. A [`REDACTED`] value
/// with nothing to restore is kept; callers should refuse it.
pub fn restore_redacted(new: &TransportConfig, old: &TransportConfig) -> TransportConfig {
    match (new, old) {
        (
            TransportConfig::Stdio { command, args, env },
            TransportConfig::Stdio { env: old_env, .. },
        ) => TransportConfig::Stdio {
            command: command.clone(),
            args: args.clone(),
            env: restore_map(env, |name| old_env.get(name)),
        },
        (
            TransportConfig::StreamableHttp { url, headers },
            TransportConfig::StreamableHttp {
                headers: old_headers,
                ..
            },
        ) => TransportConfig::StreamableHttp {
            url: url.clone(),
            headers: restore_headers(headers, old_headers),
        },
        (
            TransportConfig::Sse { url, headers },
            TransportConfig::Sse {
                headers: old_headers,
                ..
            },
        ) => TransportConfig::Sse {
            url: url.clone(),
            headers: restore_headers(headers, old_headers),
        },
        _ => new.clone(),
    }
}

/// The plaintext secret values of `t`, e.g. to scrub them from logs.
///
/// Sealed values, [`REDACTED`] placeholders and empty strings are left out:
/// none of them is a secret, and scrubbing an empty string would match
/// everywhere.
pub fn secret_values(t: &TransportConfig) -> Vec<&str> {
    secret_entries(t)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty() && *value != REDACTED && !SecretKeyring::is_sealed(value))
        .collect()
}

fn is_valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `(key_id, payload)` of a well-formed sealed value.
fn split_sealed(value: &str) -> Option<(&str, &str)> {
    let (id, payload) = value.strip_prefix(PREFIX)?.split_once(':')?;
    (is_valid_key_id(id) && !payload.is_empty()).then_some((id, payload))
}

fn aad(context: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + context.len());
    aad.extend_from_slice(AAD_PREFIX.as_bytes());
    aad.extend_from_slice(context.as_bytes());
    aad
}

/// Env names are case-sensitive, header names are not: `Authorization` and
/// `authorization` are the same field and must open the same value.
fn env_context(name: &str) -> String {
    format!("env:{name}")
}

fn header_context(name: &str) -> String {
    format!("header:{}", name.to_ascii_lowercase())
}

/// `(context, value)` of every secret in `t`.
fn secret_entries(t: &TransportConfig) -> Box<dyn Iterator<Item = (String, &str)> + '_> {
    match t {
        TransportConfig::Stdio { env, .. } => Box::new(
            env.iter()
                .map(|(name, value)| (env_context(name), value.as_str())),
        ),
        TransportConfig::StreamableHttp { headers, .. } | TransportConfig::Sse { headers, .. } => {
            Box::new(
                headers
                    .iter()
                    .map(|(name, value)| (header_context(name), value.as_str())),
            )
        }
    }
}

/// A copy of `t` with every secret value replaced by `f(context, value)`;
/// command, args and URL are copied unchanged.
fn map_secrets<E>(
    t: &TransportConfig,
    mut f: impl FnMut(&str, &str) -> Result<String, E>,
) -> Result<TransportConfig, E> {
    let mut map = |entries: &BTreeMap<String, String>,
                   context: fn(&str) -> String|
     -> Result<BTreeMap<String, String>, E> {
        entries
            .iter()
            .map(|(name, value)| Ok((name.clone(), f(&context(name), value)?)))
            .collect()
    };
    Ok(match t {
        TransportConfig::Stdio { command, args, env } => TransportConfig::Stdio {
            command: command.clone(),
            args: args.clone(),
            env: map(env, env_context)?,
        },
        TransportConfig::StreamableHttp { url, headers } => TransportConfig::StreamableHttp {
            url: url.clone(),
            headers: map(headers, header_context)?,
        },
        TransportConfig::Sse { url, headers } => TransportConfig::Sse {
            url: url.clone(),
            headers: map(headers, header_context)?,
        },
    })
}

fn restore_headers(
    new: &BTreeMap<String, String>,
    old: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    restore_map(new, |name| {
        old.get(name).or_else(|| {
            old.iter()
                .find(|(old_name, _)| old_name.eq_ignore_ascii_case(name))
                .map(|(_, value)| value)
        })
    })
}

fn restore_map<'a>(
    new: &BTreeMap<String, String>,
    old_value: impl Fn(&str) -> Option<&'a String>,
) -> BTreeMap<String, String> {
    new.iter()
        .map(|(name, value)| {
            let value = match old_value(name) {
                Some(old) if value == REDACTED => old.clone(),
                _ => value.clone(),
            };
            (name.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_text(byte: u8) -> String {
        STANDARD.encode([byte; KEY_LEN])
    }

    fn keyring(ids: &[(&str, u8)]) -> SecretKeyring {
        let spec = ids
            .iter()
            .map(|(id, byte)| format!("{id}:{}", key_text(*byte)))
            .collect::<Vec<_>>()
            .join(",");
        SecretKeyring::parse(&spec).unwrap()
    }

    fn stdio() -> TransportConfig {
        TransportConfig::Stdio {
            command: "npx".into(),
            args: vec!["-y".into(), "@acme/mcp".into()],
            env: BTreeMap::from([
                ("API_TOKEN".to_owned(), "tok-123".to_owned()),
                ("REGION".to_owned(), "eu-west-1".to_owned()),
            ]),
        }
    }

    fn http() -> TransportConfig {
        TransportConfig::StreamableHttp {
            url: "https://mcp.example.com/mcp".into(),
            headers: BTreeMap::from([
                ("Authorization".to_owned(), "Bearer abc".to_owned()),
                ("x-tenant".to_owned(), "acme".to_owned()),
            ]),
        }
    }

    fn values(t: &TransportConfig) -> Vec<&str> {
        secret_entries(t).map(|(_, v)| v).collect()
    }

    /// Replaces byte `index` of the decoded payload, keeping the encoding valid.
    fn tamper(sealed: &str, index: usize) -> String {
        let (id, encoded) = split_sealed(sealed).unwrap();
        let mut payload = URL_SAFE_NO_PAD.decode(encoded).unwrap();
        payload[index] ^= 0x01;
        format!("{PREFIX}{id}:{}", URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn round_trip() {
        let ring = keyring(&[("k1", 1)]);
        for plaintext in ["", "tok-123", "ünïcødé ✓", &"x".repeat(10_000)] {
            let sealed = ring.seal(plaintext, "env:API_TOKEN").unwrap();
            assert!(SecretKeyring::is_sealed(&sealed));
            assert!(sealed.starts_with("mcpo:v1:k1:"));
            assert_eq!(SecretKeyring::sealed_key_id(&sealed), Some("k1"));
            if !plaintext.is_empty() {
                assert!(!sealed.contains(plaintext));
            }
            assert_eq!(ring.open(&sealed, "env:API_TOKEN").unwrap(), plaintext);
        }
    }

    #[test]
    fn every_seal_differs() {
        let ring = keyring(&[("k1", 1)]);
        let a = ring.seal("same", "env:A").unwrap();
        let b = ring.seal("same", "env:A").unwrap();
        assert_ne!(a, b);
        assert_eq!(ring.open(&a, "env:A").unwrap(), "same");
        assert_eq!(ring.open(&b, "env:A").unwrap(), "same");
    }

    #[test]
    fn wrong_context_fails() {
        let ring = keyring(&[("k1", 1)]);
        let sealed = ring.seal("tok-123", "env:API_TOKEN").unwrap();
        for context in ["env:OTHER", "header:authorization", "", "env:api_token"] {
            assert!(matches!(
                ring.open(&sealed, context),
                Err(SecretsError::Corrupt)
            ));
        }
    }

    #[test]
    fn tampering_fails() {
        let ring = keyring(&[("k1", 1), ("k2", 2)]);
        let sealed = ring.seal("tok-123", "env:A").unwrap();
        let len = URL_SAFE_NO_PAD
            .decode(split_sealed(&sealed).unwrap().1)
            .unwrap()
            .len();
        // Nonce, ciphertext and tag.
        for index in [0, NONCE_LEN, len - 1] {
            assert!(matches!(
                ring.open(&tamper(&sealed, index), "env:A"),
                Err(SecretsError::Corrupt)
            ));
        }
        let truncated = &sealed[..sealed.len() - 4];
        let relabelled = sealed.replacen("mcpo:v1:k1:", "mcpo:v1:k2:", 1);
        let not_base64 = format!("{sealed}!");
        let too_short = format!("{PREFIX}k1:{}", URL_SAFE_NO_PAD.encode([0u8; 20]));
        for bad in [
            truncated,
            relabelled.as_str(),
            not_base64.as_str(),
            too_short.as_str(),
            "mcpo:v1:",
            "mcpo:v1:k1:",
            "mcpo:v1:bad id:AAAA",
            "tok-123",
        ] {
            let err = ring.open(bad, "env:A").unwrap_err();
            assert!(matches!(err, SecretsError::Corrupt), "{bad}: {err:?}");
            assert!(!err.to_string().contains("tok-123"));
        }
    }

    #[test]
    fn unknown_key_is_named() {
        let sealed = keyring(&[("old1", 1)]).seal("v", "env:A").unwrap();
        let err = keyring(&[("k2", 2)]).open(&sealed, "env:A").unwrap_err();
        assert!(matches!(&err, SecretsError::UnknownKey { id } if id == "old1"));
        let msg = err.to_string();
        assert!(
            msg.contains("`old1`") && msg.contains("MCPO_SECRET_KEYS"),
            "{msg}"
        );
    }

    #[test]
    fn rotation() {
        let a = keyring(&[("k1", 1)]);
        let b = keyring(&[("k2", 2), ("k1", 1)]);
        let c = keyring(&[("k2", 2)]);
        assert_eq!(b.active_id(), "k2");
        assert_eq!(b.ids(), vec!["k2", "k1"]);

        for plain in [stdio(), http()] {
            let sealed_a = a.seal_transport(&plain).unwrap();
            assert!(!a.needs_reseal(&sealed_a));
            assert_eq!(b.open_transport(&sealed_a).unwrap(), plain);
            assert!(b.needs_reseal(&sealed_a));

            let sealed_b = b.seal_transport(&sealed_a).unwrap();
            assert!(!b.needs_reseal(&sealed_b));
            assert!(values(&sealed_b)
                .iter()
                .all(|v| SecretKeyring::sealed_key_id(v) == Some("k2")));
            assert_eq!(c.open_transport(&sealed_b).unwrap(), plain);
            assert!(matches!(
                c.open_transport(&sealed_a),
                Err(SecretsError::UnknownKey { id }) if id == "k1"
            ));

            // Already sealed with the active key: kept byte for byte.
            assert_eq!(b.seal_transport(&sealed_b).unwrap(), sealed_b);
        }
    }

    #[test]
    fn needs_reseal_sees_plaintext() {
        let ring = keyring(&[("k1", 1)]);
        let mut t = ring.seal_transport(&stdio()).unwrap();
        assert!(!ring.needs_reseal(&t));
        if let TransportConfig::Stdio { env, .. } = &mut t {
            env.insert("NEW".into(), "plain".into());
        }
        assert!(ring.needs_reseal(&t));
        assert!(!ring.needs_reseal(&TransportConfig::Stdio {
            command: "x".into(),
            args: vec![],
            env: BTreeMap::new(),
        }));
    }

    #[test]
    fn seal_transport_refuses_values_that_do_not_open() {
        let ring = keyring(&[("k1", 1)]);
        let sealed = ring.seal("tok", "env:OTHER").unwrap();
        let t = TransportConfig::Stdio {
            command: "x".into(),
            args: vec![],
            env: BTreeMap::from([("API_TOKEN".to_owned(), sealed)]),
        };
        assert!(matches!(
            ring.seal_transport(&t),
            Err(SecretsError::Corrupt)
        ));
    }

    #[test]
    fn transports_seal_and_open() {
        let ring = keyring(&[("k1", 1)]);

        let sealed = ring.seal_transport(&stdio()).unwrap();
        let TransportConfig::Stdio { command, args, env } = &sealed else {
            panic!("kind changed");
        };
        assert_eq!(command, "npx");
        assert_eq!(args, &["-y", "@acme/mcp"]);
        assert_eq!(env.keys().collect::<Vec<_>>(), vec!["API_TOKEN", "REGION"]);
        assert!(env.values().all(|v| SecretKeyring::is_sealed(v)));
        assert_eq!(
            ring.open(&env["API_TOKEN"], "env:API_TOKEN").unwrap(),
            "tok-123"
        );
        assert_eq!(ring.open_transport(&sealed).unwrap(), stdio());

        let sealed = ring.seal_transport(&http()).unwrap();
        let TransportConfig::StreamableHttp { url, headers } = &sealed else {
            panic!("kind changed");
        };
        assert_eq!(url, "https://mcp.example.com/mcp");
        assert!(headers.values().all(|v| SecretKeyring::is_sealed(v)));
        assert_eq!(
            ring.open(&headers["Authorization"], "header:authorization")
                .unwrap(),
            "Bearer abc"
        );
        assert_eq!(ring.open_transport(&sealed).unwrap(), http());

        // A sealed env value does not open as a header, nor under another name.
        let moved = TransportConfig::StreamableHttp {
            url: "https://x/mcp".into(),
            headers: BTreeMap::from([("API_TOKEN".to_owned(), env["API_TOKEN"].clone())]),
        };
        assert!(matches!(
            ring.open_transport(&moved),
            Err(SecretsError::Corrupt)
        ));
        let TransportConfig::Stdio { env, .. } = ring.seal_transport(&stdio()).unwrap() else {
            unreachable!()
        };
        let swapped = TransportConfig::Stdio {
            command: "npx".into(),
            args: vec![],
            env: BTreeMap::from([("REGION".to_owned(), env["API_TOKEN"].clone())]),
        };
        assert!(matches!(
            ring.open_transport(&swapped),
            Err(SecretsError::Corrupt)
        ));
    }

    #[test]
    fn open_transport_passes_legacy_plaintext() {
        let ring = keyring(&[("k1", 1)]);
        assert_eq!(ring.open_transport(&stdio()).unwrap(), stdio());
        assert_eq!(ring.open_transport(&http()).unwrap(), http());
        let mut mixed = ring.seal_transport(&http()).unwrap();
        if let TransportConfig::StreamableHttp { headers, .. } = &mut mixed {
            headers.insert("x-legacy".into(), "plain".into());
        }
        let opened = ring.open_transport(&mixed).unwrap();
        assert_eq!(values(&opened), vec!["Bearer abc", "plain", "acme"]);
    }

    #[test]
    fn header_context_ignores_case() {
        let ring = keyring(&[("k1", 1)]);
        let sealed = ring.seal_transport(&http()).unwrap();
        let TransportConfig::StreamableHttp { headers, .. } = sealed else {
            unreachable!()
        };
        let renamed = TransportConfig::StreamableHttp {
            url: "https://x/mcp".into(),
            headers: BTreeMap::from([(
                "AUTHORIZATION".to_owned(),
                headers["Authorization"].clone(),
            )]),
        };
        assert_eq!(
            values(&ring.open_transport(&renamed).unwrap()),
            vec!["Bearer abc"]
        );
    }

    #[test]
    fn redaction() {
        for t in [stdio(), http()] {
            let redacted = redact_transport(&t);
            assert_eq!(redacted.kind(), t.kind());
            assert!(values(&redacted).iter().all(|v| *v == REDACTED));
            assert_eq!(values(&redacted).len(), values(&t).len());
            let json = serde_json::to_string(&redacted).unwrap();
            for secret in values(&t) {
                assert!(!json.contains(secret), "{json}");
            }
        }
        let TransportConfig::Stdio { command, args, env } = redact_transport(&stdio()) else {
            unreachable!()
        };
        assert_eq!(command, "npx");
        assert_eq!(args, vec!["-y", "@acme/mcp"]);
        assert_eq!(env.keys().collect::<Vec<_>>(), vec!["API_TOKEN", "REGION"]);
        let TransportConfig::StreamableHttp { url, headers } = redact_transport(&http()) else {
            unreachable!()
        };
        assert_eq!(url, "https://mcp.example.com/mcp");
        assert_eq!(
            headers.keys().collect::<Vec<_>>(),
            vec!["Authorization", "x-tenant"]
        );
    }

    #[test]
    fn restoring_redacted_values() {
        // Unchanged round trip gives back the stored transport.
        for t in [stdio(), http()] {
            assert_eq!(restore_redacted(&redact_transport(&t), &t), t);
        }

        // Edited, added, removed and redacted-but-unknown entries.
        let new = TransportConfig::Stdio {
            command: "uvx".into(),
            args: vec![],
            env: BTreeMap::from([
                ("API_TOKEN".to_owned(), REDACTED.to_owned()),
                ("REGION".to_owned(), "us-east-1".to_owned()),
                ("EXTRA".to_owned(), REDACTED.to_owned()),
            ]),
        };
        let TransportConfig::Stdio { command, env, .. } = restore_redacted(&new, &stdio()) else {
            unreachable!()
        };
        assert_eq!(command, "uvx");
        assert_eq!(
            env,
            BTreeMap::from([
                ("API_TOKEN".to_owned(), "tok-123".to_owned()),
                ("REGION".to_owned(), "us-east-1".to_owned()),
                ("EXTRA".to_owned(), REDACTED.to_owned()),
            ])
        );

        // Header names match case-insensitively.
        let new = TransportConfig::StreamableHttp {
            url: "https://new.example.com/mcp".into(),
            headers: BTreeMap::from([("authorization".to_owned(), REDACTED.to_owned())]),
        };
        let TransportConfig::StreamableHttp { url, headers } = restore_redacted(&new, &http())
        else {
            unreachable!()
        };
        assert_eq!(url, "https://new.example.com/mcp");
        assert_eq!(
            headers,
            BTreeMap::from([("authorization".to_owned(), "Bearer abc".to_owned())])
        );

        // A different kind shares nothing.
        let new = TransportConfig::StreamableHttp {
            url: "https://x/mcp".into(),
            headers: BTreeMap::from([("API_TOKEN".to_owned(), REDACTED.to_owned())]),
        };
        assert_eq!(restore_redacted(&new, &stdio()), new);

        // Restoring sealed values keeps them openable: contexts match.
        let ring = keyring(&[("k1", 1)]);
        let stored = ring.seal_transport(&http()).unwrap();
        let merged = restore_redacted(&redact_transport(&http()), &stored);
        assert_eq!(merged, stored);
        assert_eq!(ring.open_transport(&merged).unwrap(), http());
    }

    fn sse() -> TransportConfig {
        TransportConfig::Sse {
            url: "https://mcp.example.com/sse".into(),
            headers: BTreeMap::from([("Authorization".to_owned(), "Bearer sse".to_owned())]),
        }
    }

    #[test]
    fn sse_headers_are_secrets_too() {
        let ring = keyring(&[("k1", 1)]);
        let sealed = ring.seal_transport(&sse()).unwrap();
        let TransportConfig::Sse { url, headers } = &sealed else {
            panic!("kind changed");
        };
        assert_eq!(url, "https://mcp.example.com/sse");
        assert!(headers.values().all(|v| SecretKeyring::is_sealed(v)));
        assert!(!ring.needs_reseal(&sealed));
        assert_eq!(ring.open_transport(&sealed).unwrap(), sse());
        assert_eq!(secret_values(&sse()), vec!["Bearer sse"]);

        let redacted = redact_transport(&sse());
        assert_eq!(redacted.kind(), "sse");
        assert_eq!(values(&redacted), vec![REDACTED]);
        assert!(!serde_json::to_string(&redacted)
            .unwrap()
            .contains("Bearer sse"));

        // A PATCH sending the redacted value back keeps the stored one,
        // whatever the header's case; another kind shares nothing.
        let new = TransportConfig::Sse {
            url: "https://new.example.com/sse".into(),
            headers: BTreeMap::from([("authorization".to_owned(), REDACTED.to_owned())]),
        };
        assert_eq!(
            values(&restore_redacted(&new, &sealed)),
            vec![headers["Authorization"].as_str()]
        );
        assert_eq!(restore_redacted(&new, &http()), new);
        assert_eq!(restore_redacted(&redact_transport(&sse()), &sse()), sse());
    }

    #[test]
    fn secret_values_lists_plaintext_only() {
        assert_eq!(secret_values(&stdio()), vec!["tok-123", "eu-west-1"]);
        assert_eq!(secret_values(&http()), vec!["Bearer abc", "acme"]);
        let ring = keyring(&[("k1", 1)]);
        assert!(secret_values(&ring.seal_transport(&stdio()).unwrap()).is_empty());
        assert!(secret_values(&redact_transport(&http())).is_empty());
        let with_empty = TransportConfig::Stdio {
            command: "x".into(),
            args: vec![],
            env: BTreeMap::from([("EMPTY".to_owned(), String::new())]),
        };
        assert!(secret_values(&with_empty).is_empty());
    }

    #[test]
    fn parsing() {
        let k1 = key_text(1);
        let k2 = key_text(2);
        let ring = SecretKeyring::parse(&format!(" k2 : {k2} ,\n\tk1:{k1}\n")).unwrap();
        assert_eq!(ring.active_id(), "k2");
        assert_eq!(ring.ids(), vec!["k2", "k1"]);
        let long_id = "a".repeat(MAX_KEY_ID_LEN);
        let ring: SecretKeyring = format!("{long_id}:{k1},A-b_9:{k2}").parse().unwrap();
        assert_eq!(ring.ids(), vec![long_id.as_str(), "A-b_9"]);

        let generated = SecretKeyring::generate_key();
        assert_ne!(generated, SecretKeyring::generate_key());
        assert_eq!(STANDARD.decode(&generated).unwrap().len(), KEY_LEN);
        let ring = SecretKeyring::parse(&format!("gen:{generated}")).unwrap();
        let sealed = ring.seal("v", "env:A").unwrap();
        assert_eq!(ring.open(&sealed, "env:A").unwrap(), "v");
    }

    #[test]
    fn parse_errors_never_show_keys() {
        let k1 = key_text(1);
        // Mostly valid base64 with one bad character, so the decoder would
        // have quoted key bytes.
        let bad_base64 = format!("{}*", &k1[..43]);
        let short = STANDARD.encode([7u8; 16]);
        let long = STANDARD.encode([7u8; 33]);
        let unpadded = k1.trim_end_matches('=').to_owned();
        let cases: Vec<(String, &str, Vec<&str>)> = vec![
            (String::new(), "no keys", vec![]),
            ("  \n ".into(), "no keys", vec![]),
            (format!("k1:{bad_base64}"), "`k1`", vec![&bad_base64]),
            (format!("k1:{unpadded}"), "`k1`", vec![&unpadded]),
            (format!("k1:{short}"), "16 bytes", vec![&short]),
            (format!("k1:{long}"), "33 bytes", vec![&long]),
            (format!("k1:{k1},k1:{short}"), "`k1`", vec![&k1, &short]),
            (format!("k1:{k1},"), "entry 2", vec![&k1]),
            (k1.clone(), "entry 1", vec![&k1]),
            (format!("{k1}:{k1}"), "entry 1", vec![&k1]),
            (format!(":{k1}"), "entry 1", vec![&k1]),
            (format!("bad id:{k1}"), "entry 1", vec![&k1]),
            (format!("{}:{k1}", "a".repeat(33)), "entry 1", vec![&k1]),
        ];
        for (spec, expected, secrets) in cases {
            let err = SecretKeyring::parse(&spec).unwrap_err();
            assert!(matches!(err, SecretsError::InvalidKeyring(_)));
            let msg = err.to_string();
            assert!(msg.contains(expected), "{spec:?}: {msg}");
            assert!(msg.contains("MCPO_SECRET_KEYS"), "{msg}");
            for secret in secrets {
                assert!(!msg.contains(secret), "{msg}");
                // Nor a sizeable piece of it.
                assert!(!msg.contains(&secret[..8]), "{msg}");
            }
        }
    }

    #[test]
    fn debug_shows_ids_only() {
        let k1 = key_text(1);
        let k2 = key_text(2);
        let ring = SecretKeyring::parse(&format!("new:{k2},old:{k1}")).unwrap();
        for shown in [format!("{ring:?}"), format!("{ring:#?}")] {
            assert!(shown.contains("new") && shown.contains("old"), "{shown}");
            assert!(!shown.contains(&k1) && !shown.contains(&k2), "{shown}");
            assert!(
                !shown.contains(&k1[..8]) && !shown.contains(&k2[..8]),
                "{shown}"
            );
            // Neither as bytes.
            assert!(
                !shown.contains("[1, 1") && !shown.contains("[2, 2"),
                "{shown}"
            );
        }
    }
}
