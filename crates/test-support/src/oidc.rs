//! A real, local OAuth2/OIDC issuer for tests.
//!
//! [`TestIssuer::start`] generates an RSA-2048 key (`rsa-1`) and an EC P-256
//! key (`ec-1`) in-process and serves OIDC discovery
//! (`/.well-known/openid-configuration`) and the JWKS (`/jwks.json`) over HTTP
//! on `127.0.0.1:0`. Tokens are signed on demand, including the malicious
//! ones a validator must refuse (`alg: none`, HS256 key confusion, tampered
//! payloads) and tokens from keys that are not (yet) published.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The signing algorithms the test issuer can generate keys for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, RSA-2048 key.
    Rs256,
    /// ECDSA with P-256 and SHA-256.
    Es256,
}

impl KeyAlg {
    fn algorithm(self) -> Algorithm {
        match self {
            KeyAlg::Rs256 => Algorithm::RS256,
            KeyAlg::Es256 => Algorithm::ES256,
        }
    }

    fn name(self) -> &'static str {
        match self {
            KeyAlg::Rs256 => "RS256",
            KeyAlg::Es256 => "ES256",
        }
    }

    fn kid_prefix(self) -> &'static str {
        match self {
            KeyAlg::Rs256 => "rsa",
            KeyAlg::Es256 => "ec",
        }
    }
}

/// Makes sure jsonwebtoken has a process-wide crypto provider (aws-lc-rs).
///
/// With only the `aws_lc_rs` feature enabled jsonwebtoken picks it up by
/// itself; installing it explicitly keeps things working should the
/// `rust_crypto` feature ever be unified in too (then jsonwebtoken cannot
/// choose and panics at first use). Idempotent: later calls, or calls after
/// jsonwebtoken has already chosen its provider, are no-ops.
pub fn install_crypto() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

struct IssuerKey {
    kid: String,
    alg: KeyAlg,
    signing: EncodingKey,
    jwk: Value,
    /// SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----").
    public_pem: String,
    published: bool,
}

struct Shared {
    issuer: Mutex<String>,
    keys: Mutex<Vec<IssuerKey>>,
    jwks_fetches: AtomicUsize,
    next_rsa: AtomicUsize,
    next_ec: AtomicUsize,
}

impl Shared {
    fn issuer(&self) -> String {
        self.issuer.lock().unwrap().clone()
    }

    fn next_kid(&self, alg: KeyAlg) -> String {
        let counter = match alg {
            KeyAlg::Rs256 => &self.next_rsa,
            KeyAlg::Es256 => &self.next_ec,
        };
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        format!("{}-{n}", alg.kid_prefix())
    }

    fn jwks(&self) -> Value {
        let keys = self.keys.lock().unwrap();
        let published: Vec<Value> = keys
            .iter()
            .filter(|k| k.published)
            .map(|k| k.jwk.clone())
            .collect();
        json!({ "keys": published })
    }

    fn discovery(&self) -> Value {
        let issuer = self.issuer();
        json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/jwks.json"),
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/oauth/token"),
            "userinfo_endpoint": format!("{issuer}/userinfo"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "permissions"],
        })
    }
}

/// A local OIDC issuer: discovery + JWKS over HTTP, tokens signed on demand.
pub struct TestIssuer {
    shared: Arc<Shared>,
    handle: ServerHandle,
}

impl TestIssuer {
    /// Generates `rsa-1` (RS256) and `ec-1` (ES256), both published, and
    /// starts serving discovery and JWKS on `127.0.0.1` (random port).
    pub async fn start() -> TestIssuer {
        install_crypto();
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind test issuer");
        let addr = listener.local_addr().expect("test issuer address");
        let shared = Arc::new(Shared {
            issuer: Mutex::new(format!("http://{addr}")),
            keys: Mutex::new(Vec::new()),
            jwks_fetches: AtomicUsize::new(0),
            next_rsa: AtomicUsize::new(0),
            next_ec: AtomicUsize::new(0),
        });

        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(discovery_handler),
                )
                .route("/jwks.json", web::get().to(jwks_handler))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("listen test issuer")
        .run();
        let handle = server.handle();
        tokio::spawn(server);

        let issuer = TestIssuer { shared, handle };
        let rsa = issuer.add_key(KeyAlg::Rs256);
        let ec = issuer.add_key(KeyAlg::Es256);
        debug_assert_eq!((rsa.as_str(), ec.as_str()), ("rsa-1", "ec-1"));
        issuer
    }

    /// Makes discovery and new tokens name `url` as the issuer: for tests
    /// that put a proxy in front of this issuer.
    pub fn advertise_as(&self, url: &str) {
        *self.shared.issuer.lock().unwrap() = url.trim_end_matches('/').to_owned();
    }

    /// The issuer identifier: the base URL without trailing slash, e.g.
    /// `http://127.0.0.1:41234`. This is the `iss` of its tokens.
    pub fn issuer(&self) -> String {
        self.shared.issuer()
    }

    /// `{issuer}/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.shared.issuer())
    }

    /// `{issuer}/jwks.json`.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks.json", self.shared.issuer())
    }

    /// How many JWKS requests have been served so far.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// The JWKS document as currently served (does not count as a fetch).
    pub fn jwks(&self) -> Value {
        self.shared.jwks()
    }

    /// Generates a key, publishes it in the JWKS and returns its kid
    /// (`rsa-N` or `ec-N`).
    pub fn add_key(&self, alg: KeyAlg) -> String {
        self.insert_key(alg, true)
    }

    /// Generates a key that can sign but is not in the JWKS until
    /// [`publish`](Self::publish)ed; returns its kid.
    pub fn add_unpublished_key(&self, alg: KeyAlg) -> String {
        self.insert_key(alg, false)
    }

    /// Adds the key to the JWKS. Panics on an unknown kid.
    pub fn publish(&self, kid: &str) {
        self.set_published(kid, true);
    }

    /// Removes the key from the JWKS (it can still sign). Panics on an
    /// unknown kid.
    pub fn unpublish(&self, kid: &str) {
        self.set_published(kid, false);
    }

    /// The SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`, 64-column
    /// lines, trailing newline) of a key. Panics on an unknown kid.
    pub fn public_key_pem(&self, kid: &str) -> String {
        let keys = self.shared.keys.lock().unwrap();
        let key = find(&keys, kid);
        key.public_pem.clone()
    }

    /// Standard access-token claims: `iss` = this issuer, `aud`,
    /// `sub` = `user-<random>`, `iat`/`nbf` = now, `exp` = now + 900 and
    /// Auth0-style `permissions`.
    pub fn claims(&self, audience: &str, permissions: &[&str]) -> Value {
        let now = now();
        json!({
            "iss": self.shared.issuer(),
            "aud": audience,
            "sub": format!("user-{}", uuid::Uuid::new_v4().simple()),
            "iat": now,
            "nbf": now,
            "exp": now + 900,
            "permissions": permissions,
        })
    }

    /// Signs `claims` with the default RSA key `rsa-1` (RS256).
    pub fn token(&self, claims: Value) -> String {
        self.token_with("rsa-1", claims)
    }

    /// Signs `claims` with key `kid` using its algorithm; the header carries
    /// `alg`, `kid` and `typ: JWT`. Panics on an unknown kid.
    pub fn token_with(&self, kid: &str, claims: Value) -> String {
        let (alg, signing) = {
            let keys = self.shared.keys.lock().unwrap();
            let key = find(&keys, kid);
            (key.alg, key.signing.clone())
        };
        let mut header = Header::new(alg.algorithm());
        header.kid = Some(kid.to_string());
        jsonwebtoken::encode(&header, &claims, &signing).expect("sign test token")
    }

    /// An unsigned token: header `{"alg":"none","typ":"JWT"}`, empty
    /// signature (`header.payload.`).
    pub fn token_alg_none(&self, claims: Value) -> String {
        let header = json!({ "alg": "none", "typ": "JWT" });
        format!("{}.{}.", b64_json(&header), b64_json(&claims))
    }

    /// The RS256→HS256 key-confusion attack: header
    /// `{"alg":"HS256","typ":"JWT","kid":"rsa-1"}`, HMAC-SHA256 over
    /// `header.payload` keyed with the text of `rsa-1`'s public key PEM (as
    /// [`public_key_pem`](Self::public_key_pem) returns it).
    pub fn token_hs256_with_public_key(&self, claims: Value) -> String {
        let pem = self.public_key_pem("rsa-1");
        let header = json!({ "alg": "HS256", "typ": "JWT", "kid": "rsa-1" });
        let message = format!("{}.{}", b64_json(&header), b64_json(&claims));
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, pem.as_bytes());
        let tag = aws_lc_rs::hmac::sign(&key, message.as_bytes());
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Decodes the payload of `token`, applies `change`, re-encodes it and
    /// keeps the original header and signature (which no longer match).
    pub fn tampered(token: &str, change: impl FnOnce(&mut Value)) -> String {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            panic!("not a compact JWS: {token}");
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .expect("payload is base64url");
        let mut claims: Value = serde_json::from_slice(&bytes).expect("payload is JSON");
        change(&mut claims);
        format!("{header}.{}.{signature}", b64_json(&claims))
    }

    fn insert_key(&self, alg: KeyAlg, published: bool) -> String {
        let kid = self.shared.next_kid(alg);
        let key = generate(&kid, alg, published);
        self.shared.keys.lock().unwrap().push(key);
        kid
    }

    fn set_published(&self, kid: &str, published: bool) {
        let mut keys = self.shared.keys.lock().unwrap();
        let key = keys
            .iter_mut()
            .find(|k| k.kid == kid)
            .unwrap_or_else(|| panic!("test issuer has no key {kid}"));
        key.published = published;
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        // `stop` sends its command synchronously; the returned future only
        // waits for completion, so no runtime is needed here.
        drop(self.handle.stop(false));
    }
}

async fn discovery_handler(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.discovery())
}

async fn jwks_handler(shared: web::Data<Shared>) -> HttpResponse {
    shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok().json(shared.jwks())
}

fn find<'a>(keys: &'a [IssuerKey], kid: &str) -> &'a IssuerKey {
    keys.iter()
        .find(|k| k.kid == kid)
        .unwrap_or_else(|| panic!("test issuer has no key {kid}"))
}

fn generate(kid: &str, alg: KeyAlg, published: bool) -> IssuerKey {
    match alg {
        KeyAlg::Rs256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .expect("generate RSA key");
            // aws-lc-rs serialises RSA private keys as PKCS#8 only, while
            // jsonwebtoken's `from_rsa_der` wants PKCS#1; its PEM loader
            // unwraps PKCS#8 ("PRIVATE KEY") into PKCS#1 for us.
            let pkcs8 = AsDer::as_der(&pair).expect("RSA key as PKCS#8");
            let private_pem = pem("PRIVATE KEY", pkcs8.as_ref());
            let signing =
                EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("RSA encoding key");
            let public = pair.public_key();
            let spki = AsDer::as_der(public).expect("RSA public key as SPKI");
            let components = aws_lc_rs::signature::RsaPublicKeyComponents::<Vec<u8>>::from(public);
            let jwk = json!({
                "kty": "RSA",
                "use": "sig",
                "alg": alg.name(),
                "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(strip_leading_zeros(&components.n)),
                "e": URL_SAFE_NO_PAD.encode(strip_leading_zeros(&components.e)),
            });
            IssuerKey {
                kid: kid.to_string(),
                alg,
                signing,
                jwk,
                public_pem: pem("PUBLIC KEY", spki.as_ref()),
                published,
            }
        }
        KeyAlg::Es256 => {
            let pair =
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("generate EC key");
            // jsonwebtoken's `from_ec_der` wants PKCS#8, which is what
            // aws-lc-rs produces.
            let pkcs8 = pair.to_pkcs8v1().expect("EC key as PKCS#8");
            let signing = EncodingKey::from_ec_der(pkcs8.as_ref());
            let public = pair.public_key();
            let point = public.as_ref();
            assert!(
                point.len() == 65 && point[0] == 0x04,
                "uncompressed P-256 point"
            );
            let spki = AsDer::as_der(public).expect("EC public key as SPKI");
            let jwk = json!({
                "kty": "EC",
                "use": "sig",
                "alg": alg.name(),
                "kid": kid,
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            });
            IssuerKey {
                kid: kid.to_string(),
                alg,
                signing,
                jwk,
                public_pem: pem("PUBLIC KEY", spki.as_ref()),
                published,
            }
        }
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    &bytes[start..]
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("serialise JSON"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::errors::ErrorKind;
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};

    use super::*;

    const AUDIENCE: &str = "https://mcpo.test/api";

    async fn fetch_jwks(issuer: &TestIssuer) -> JwkSet {
        let discovery: Value = reqwest::get(issuer.discovery_url())
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        let jwks_uri = discovery["jwks_uri"].as_str().unwrap();
        reqwest::get(jwks_uri)
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn validation(issuer: &TestIssuer, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[issuer.issuer()]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation
    }

    fn key(jwks: &JwkSet, kid: &str) -> DecodingKey {
        DecodingKey::from_jwk(jwks.find(kid).unwrap()).unwrap()
    }

    fn verify(
        issuer: &TestIssuer,
        jwks: &JwkSet,
        kid: &str,
        alg: Algorithm,
        token: &str,
    ) -> Result<Value, ErrorKind> {
        decode::<Value>(token, &key(jwks, kid), &validation(issuer, alg))
            .map(|data| data.claims)
            .map_err(|e| e.into_kind())
    }

    #[tokio::test]
    async fn discovery_and_jwks_are_served() {
        let issuer = TestIssuer::start().await;
        let base = issuer.issuer();
        assert!(base.starts_with("http://127.0.0.1:"));
        assert!(!base.ends_with('/'));

        let discovery: Value = reqwest::get(issuer.discovery_url())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(discovery["issuer"], base);
        assert_eq!(discovery["jwks_uri"], format!("{base}/jwks.json"));

        let jwks: Value = reqwest::get(issuer.jwks_uri())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        let rsa = keys.iter().find(|k| k["kid"] == "rsa-1").unwrap();
        assert_eq!(rsa["kty"], "RSA");
        assert_eq!(rsa["alg"], "RS256");
        assert_eq!(rsa["use"], "sig");
        assert_eq!(rsa["e"], "AQAB");
        let n = URL_SAFE_NO_PAD.decode(rsa["n"].as_str().unwrap()).unwrap();
        assert_eq!(n.len(), 256);
        assert_ne!(n[0], 0);
        let ec = keys.iter().find(|k| k["kid"] == "ec-1").unwrap();
        assert_eq!(ec["kty"], "EC");
        assert_eq!(ec["crv"], "P-256");
        assert_eq!(ec["alg"], "ES256");
        for coordinate in ["x", "y"] {
            let bytes = URL_SAFE_NO_PAD
                .decode(ec[coordinate].as_str().unwrap())
                .unwrap();
            assert_eq!(bytes.len(), 32);
        }
        // The JWKS also parses as jsonwebtoken's JwkSet.
        let parsed: JwkSet = serde_json::from_value(jwks).unwrap();
        assert!(parsed.find("rsa-1").is_some() && parsed.find("ec-1").is_some());
    }

    #[tokio::test]
    async fn rs256_and_es256_tokens_verify_against_fetched_jwks() {
        let issuer = TestIssuer::start().await;
        let jwks = fetch_jwks(&issuer).await;
        let claims = issuer.claims(AUDIENCE, &["tools:call", "tools:list"]);

        let token = issuer.token(claims.clone());
        let header = decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some("rsa-1"));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let verified = verify(&issuer, &jwks, "rsa-1", Algorithm::RS256, &token).unwrap();
        assert_eq!(verified, claims);
        assert_eq!(verified["permissions"], json!(["tools:call", "tools:list"]));
        assert!(verified["sub"].as_str().unwrap().starts_with("user-"));

        let token = issuer.token_with("ec-1", claims.clone());
        let header = decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("ec-1"));
        let verified = verify(&issuer, &jwks, "ec-1", Algorithm::ES256, &token).unwrap();
        assert_eq!(verified, claims);

        // Wrong key / wrong algorithm / wrong claims are refused.
        assert!(verify(&issuer, &jwks, "rsa-1", Algorithm::ES256, &token).is_err());
        assert_eq!(
            verify(&issuer, &jwks, "rsa-1", Algorithm::RS256, &token),
            Err(ErrorKind::InvalidAlgorithm)
        );
        let mut expired = claims.clone();
        expired["exp"] = json!(now() - 3600);
        let token = issuer.token(expired);
        assert_eq!(
            verify(&issuer, &jwks, "rsa-1", Algorithm::RS256, &token),
            Err(ErrorKind::ExpiredSignature)
        );
        let mut other_aud = claims.clone();
        other_aud["aud"] = json!("https://elsewhere.test");
        let token = issuer.token(other_aud);
        assert_eq!(
            verify(&issuer, &jwks, "rsa-1", Algorithm::RS256, &token),
            Err(ErrorKind::InvalidAudience)
        );
        let mut other_iss = claims;
        other_iss["iss"] = json!("https://evil.test");
        let token = issuer.token(other_iss);
        assert_eq!(
            verify(&issuer, &jwks, "rsa-1", Algorithm::RS256, &token),
            Err(ErrorKind::InvalidIssuer)
        );
    }

    #[tokio::test]
    async fn missing_iss_or_aud_passes_unless_required() {
        // Documents a jsonwebtoken 11 behaviour production code must guard
        // against: `set_issuer`/`set_audience` only check the claim when it
        // is present; `required_spec_claims` must list "iss" and "aud".
        let issuer = TestIssuer::start().await;
        let jwks = fetch_jwks(&issuer).await;
        let mut claims = issuer.claims(AUDIENCE, &[]);
        claims.as_object_mut().unwrap().remove("iss");
        claims.as_object_mut().unwrap().remove("aud");
        let token = issuer.token(claims);

        let mut lax = Validation::new(Algorithm::RS256);
        lax.set_issuer(&[issuer.issuer()]);
        lax.set_audience(&[AUDIENCE]);
        assert!(decode::<Value>(&token, &key(&jwks, "rsa-1"), &lax).is_ok());

        assert!(matches!(
            verify(&issuer, &jwks, "rsa-1", Algorithm::RS256, &token),
            Err(ErrorKind::MissingRequiredClaim(claim)) if claim == "iss" || claim == "aud"
        ));
    }

    #[tokio::test]
    async fn attack_tokens_are_refused() {
        let issuer = TestIssuer::start().await;
        let jwks = fetch_jwks(&issuer).await;
        let claims = issuer.claims(AUDIENCE, &["admin"]);

        // alg: none — well formed, empty signature, refused.
        let none = issuer.token_alg_none(claims.clone());
        assert!(none.ends_with('.'));
        assert_eq!(none.split('.').count(), 3);
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(none.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header, json!({ "alg": "none", "typ": "JWT" }));
        assert!(verify(&issuer, &jwks, "rsa-1", Algorithm::RS256, &none).is_err());

        // HS256 keyed with the RSA public key PEM.
        let confused = issuer.token_hs256_with_public_key(claims.clone());
        let header = decode_header(&confused).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        assert_eq!(header.kid.as_deref(), Some("rsa-1"));
        assert_eq!(
            verify(&issuer, &jwks, "rsa-1", Algorithm::RS256, &confused),
            Err(ErrorKind::InvalidAlgorithm)
        );
        // Positive control: the attack token really is a valid HMAC over the
        // PEM text, i.e. it would pass a validator that trusted `alg`.
        let pem = issuer.public_key_pem("rsa-1");
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let mut naive = validation(&issuer, Algorithm::HS256);
        naive.algorithms = vec![Algorithm::HS256];
        let forged =
            decode::<Value>(&confused, &DecodingKey::from_secret(pem.as_bytes()), &naive).unwrap();
        assert_eq!(forged.claims, claims);
        // ...and the PEM is the real rsa-1 public key.
        let from_pem = DecodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        let good = issuer.token(claims.clone());
        decode::<Value>(&good, &from_pem, &validation(&issuer, Algorithm::RS256)).unwrap();

        // Tampered payload keeps the old signature and is refused.
        let tampered = TestIssuer::tampered(&good, |c| {
            c["permissions"] = json!(["admin", "root"]);
        });
        assert_eq!(
            tampered.rsplit('.').next(),
            good.rsplit('.').next(),
            "signature kept"
        );
        let payload: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(tampered.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(payload["permissions"], json!(["admin", "root"]));
        assert_eq!(
            verify(&issuer, &jwks, "rsa-1", Algorithm::RS256, &tampered),
            Err(ErrorKind::InvalidSignature)
        );
        let ec_token = issuer.token_with("ec-1", claims);
        let ec_tampered = TestIssuer::tampered(&ec_token, |c| c["sub"] = json!("someone-else"));
        assert_eq!(
            verify(&issuer, &jwks, "ec-1", Algorithm::ES256, &ec_tampered),
            Err(ErrorKind::InvalidSignature)
        );
    }

    #[tokio::test]
    async fn keys_are_published_and_unpublished_and_fetches_counted() {
        let issuer = TestIssuer::start().await;
        assert_eq!(issuer.jwks_fetches(), 0);

        let next = issuer.add_unpublished_key(KeyAlg::Rs256);
        assert_eq!(next, "rsa-2");
        let token = issuer.token_with(&next, issuer.claims(AUDIENCE, &[]));
        let jwks = fetch_jwks(&issuer).await;
        assert_eq!(issuer.jwks_fetches(), 1);
        assert!(jwks.find(&next).is_none());
        assert!(issuer.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["kid"] != next.as_str()));

        issuer.publish(&next);
        let jwks = fetch_jwks(&issuer).await;
        assert_eq!(issuer.jwks_fetches(), 2);
        verify(&issuer, &jwks, &next, Algorithm::RS256, &token).unwrap();
        // A token from rsa-2 does not verify with rsa-1.
        assert_eq!(
            verify(&issuer, &jwks, "rsa-1", Algorithm::RS256, &token),
            Err(ErrorKind::InvalidSignature)
        );

        let ec2 = issuer.add_key(KeyAlg::Es256);
        assert_eq!(ec2, "ec-2");
        issuer.unpublish("rsa-1");
        let jwks = fetch_jwks(&issuer).await;
        assert_eq!(issuer.jwks_fetches(), 3);
        assert!(jwks.find("rsa-1").is_none());
        let kids: Vec<_> = jwks
            .keys
            .iter()
            .map(|k| k.common.key_id.clone().unwrap())
            .collect();
        assert_eq!(kids, ["ec-1", "rsa-2", "ec-2"]);
        let token = issuer.token_with(&ec2, issuer.claims(AUDIENCE, &[]));
        verify(&issuer, &jwks, &ec2, Algorithm::ES256, &token).unwrap();

        // Discovery does not count as a JWKS fetch.
        reqwest::get(issuer.discovery_url()).await.unwrap();
        assert_eq!(issuer.jwks_fetches(), 3);
    }

    #[tokio::test]
    async fn validation_algorithms_must_share_one_family() {
        // Documents jsonwebtoken 11: mixing families in
        // `Validation::algorithms` fails every token with InvalidAlgorithm,
        // so pick the Validation per key (from the JWK's kty/alg).
        let issuer = TestIssuer::start().await;
        let jwks = fetch_jwks(&issuer).await;
        let token = issuer.token(issuer.claims(AUDIENCE, &[]));
        let mut mixed = validation(&issuer, Algorithm::RS256);
        mixed.algorithms = vec![Algorithm::RS256, Algorithm::ES256];
        let err = decode::<Value>(&token, &key(&jwks, "rsa-1"), &mixed).unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::InvalidAlgorithm);
    }
}
