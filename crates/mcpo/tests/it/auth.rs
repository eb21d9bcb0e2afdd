//! OAuth2 access tokens (JWT) across the three services, against a real local
//! OIDC issuer: what is accepted, what is refused and how (status, code, a
//! message naming the problem, `WWW-Authenticate`, never the token itself),
//! key rotation, the refetch rate limit and an unreachable issuer.
//! API keys are covered elsewhere.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mcpo_core::auth::{AuthSettings, OidcSettings};
use mcpo_core::config::Settings;
use mcpo_test_support::app::AUDIENCE;
use mcpo_test_support::oidc::{KeyAlg, TestIssuer};
use mcpo_test_support::{closed_port, eventually, TestApp};
use reqwest::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::Method;
use serde_json::{json, Value};

use crate::stdio_fixture;

const SERVICES: &str = "/api/v1/mcpo/services";

/// An answer, read once: status, the headers auth sets, the raw text and the JSON.
#[derive(Debug)]
struct Answer {
    status: u16,
    challenge: Option<String>,
    retry_after: Option<String>,
    text: String,
    body: Value,
}

impl Answer {
    async fn of(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let challenge = header(WWW_AUTHENTICATE);
        let retry_after = header(RETRY_AFTER);
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            challenge,
            retry_after,
            text,
            body,
        }
    }

    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

/// Sends a request with this `Authorization` header (or none).
async fn send(method: Method, url: &str, authorization: Option<&str>) -> Answer {
    let mut request = reqwest::Client::new().request(method.clone(), url);
    if let Some(value) = authorization {
        request = request.header(AUTHORIZATION, value);
    }
    if method == Method::POST {
        request = request.json(&json!({}));
    }
    Answer::of(request.send().await.unwrap()).await
}

/// GET /api/v1/mcpo/services (needs `registry:read`) with `Bearer {token}`.
async fn list_services(app: &TestApp, token: &str) -> Answer {
    send(
        Method::GET,
        &format!("{}{SERVICES}", app.registry_url),
        Some(&format!("Bearer {token}")),
    )
    .await
}

/// The credential, and each long part of it (a JWT's payload and signature),
/// appear neither in the body nor in the challenge. `""`: none was sent.
fn assert_not_echoed(answer: &Answer, credential: &str) {
    let mut secrets: Vec<&str> = [credential].into_iter().filter(|c| !c.is_empty()).collect();
    secrets.extend(credential.split('.').filter(|part| part.len() >= 16));
    for secret in secrets {
        assert!(
            !answer.text.contains(secret),
            "the answer quotes the credential: {}",
            answer.text
        );
        assert!(
            !answer
                .challenge
                .as_deref()
                .unwrap_or_default()
                .contains(secret),
            "the challenge quotes the credential: {:?}",
            answer.challenge
        );
    }
}

/// 401 `invalid_token`, a message containing `says`, the RFC 6750 challenge
/// describing the same, and the credential not echoed.
fn assert_invalid_token(answer: &Answer, credential: &str, says: &str) {
    assert_eq!(answer.status, 401, "{answer:#?}");
    assert_eq!(answer.code(), "invalid_token", "{answer:#?}");
    assert!(
        answer.message().contains(says),
        "the message should say {says:?}: {answer:#?}"
    );
    let challenge = answer
        .challenge
        .as_deref()
        .expect("a WWW-Authenticate header");
    assert!(
        challenge.starts_with(r#"Bearer realm="mcpo", error="invalid_token", error_description=""#),
        "{challenge}"
    );
    assert!(challenge.contains(says), "{challenge}");
    assert_not_echoed(answer, credential);
}

/// 403 `permission_denied` naming `required`, in the body and the challenge.
fn assert_permission_denied(answer: &Answer, credential: &str, required: &str) {
    assert_eq!(answer.status, 403, "{answer:#?}");
    assert_eq!(answer.code(), "permission_denied", "{answer:#?}");
    assert_eq!(answer.body["details"]["required"], required, "{answer:#?}");
    assert!(answer.message().contains(required), "{answer:#?}");
    assert_eq!(
        answer.challenge.as_deref(),
        Some(
            format!(r#"Bearer realm="mcpo", error="insufficient_scope", scope="{required}""#)
                .as_str()
        )
    );
    assert_not_echoed(answer, credential);
}

fn assert_ok(answer: &Answer) {
    assert_eq!(answer.status, 200, "{answer:#?}");
    assert!(answer.body["services"].is_array(), "{answer:#?}");
}

/// A `spawn_with` adjustment changing the OIDC settings the app trusts.
fn oidc(adjust: impl FnOnce(&mut OidcSettings)) -> impl FnOnce(&mut Settings) {
    move |settings| match &mut settings.auth {
        AuthSettings::Enforced { oidc: Some(o), .. } => adjust(o),
        other => panic!("the test app should trust an OIDC issuer: {other:?}"),
    }
}

/// Standard claims with `registry:read`; `iat` is "now" as the issuer sees it.
fn reader_claims(issuer: &TestIssuer) -> Value {
    issuer.claims(AUDIENCE, &["registry:read"])
}

fn now_of(claims: &Value) -> u64 {
    claims["iat"].as_u64().unwrap()
}

#[tokio::test]
async fn requests_without_credentials_are_refused_but_probes_are_public() {
    let app = TestApp::spawn().await;
    let protected = [
        (Method::GET, format!("{}{SERVICES}", app.registry_url)),
        (Method::POST, format!("{}/tools/x/y", app.executor_url)),
        (Method::GET, format!("{}/openapi.json", app.publisher_url)),
    ];
    for (method, url) in protected {
        let answer = send(method.clone(), &url, None).await;
        assert_eq!(answer.status, 401, "{method} {url}: {answer:#?}");
        assert_eq!(answer.code(), "unauthenticated", "{method} {url}");
        assert!(
            answer.message().contains("Authorization: Bearer"),
            "{answer:#?}"
        );
        assert_eq!(
            answer.challenge.as_deref(),
            Some(r#"Bearer realm="mcpo""#),
            "{method} {url}"
        );
    }
    for base in [&app.registry_url, &app.executor_url, &app.publisher_url] {
        for probe in ["/healthz", "/readyz"] {
            let answer = send(Method::GET, &format!("{base}{probe}"), None).await;
            assert_eq!(answer.status, 200, "{base}{probe}: {answer:#?}");
        }
    }
}

#[tokio::test]
async fn valid_rs256_and_es256_tokens_are_accepted() {
    let app = TestApp::spawn().await;
    let rs256 = app.issuer.token(reader_claims(&app.issuer));
    assert_ok(&list_services(&app, &rs256).await);
    let es256 = app.issuer.token_with("ec-1", reader_claims(&app.issuer));
    assert_ok(&list_services(&app, &es256).await);
    // The scheme is case-insensitive (RFC 7235).
    let lower = send(
        Method::GET,
        &format!("{}{SERVICES}", app.registry_url),
        Some(&format!("bearer {es256}")),
    )
    .await;
    assert_ok(&lower);
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    let app = TestApp::spawn().await;

    let mut expired = reader_claims(&app.issuer);
    let now = now_of(&expired);
    expired["iat"] = json!(now - 1200);
    expired["nbf"] = json!(now - 1200);
    expired["exp"] = json!(now - 600);
    let expired = app.issuer.token(expired);
    assert_invalid_token(&list_services(&app, &expired).await, &expired, "expired");
    // The same on the other services.
    let mut everything = app
        .issuer
        .claims(AUDIENCE, mcpo_test_support::app::ALL_PERMISSIONS);
    everything["iat"] = json!(now - 1200);
    everything["nbf"] = json!(now - 1200);
    everything["exp"] = json!(now - 600);
    let expired_admin = app.issuer.token(everything);
    let bearer = format!("Bearer {expired_admin}");
    for (method, url) in [
        (Method::POST, format!("{}/tools/x/y", app.executor_url)),
        (Method::GET, format!("{}/openapi.json", app.publisher_url)),
    ] {
        let answer = send(method, &url, Some(&bearer)).await;
        assert_invalid_token(&answer, &expired_admin, "expired");
    }

    let mut early = reader_claims(&app.issuer);
    early["nbf"] = json!(now + 600);
    early["exp"] = json!(now + 1200);
    let early = app.issuer.token(early);
    assert_invalid_token(&list_services(&app, &early).await, &early, "not valid yet");
}

#[tokio::test]
async fn tokens_for_another_audience_or_from_another_issuer_are_refused() {
    let app = TestApp::spawn().await;

    let other_audience = app
        .issuer
        .token(app.issuer.claims("some-other-api", &["registry:read"]));
    assert_invalid_token(
        &list_services(&app, &other_audience).await,
        &other_audience,
        "audience",
    );

    let mut claims = reader_claims(&app.issuer);
    claims["iss"] = json!("https://issuer.elsewhere.test");
    let other_issuer = app.issuer.token(claims);
    assert_invalid_token(
        &list_services(&app, &other_issuer).await,
        &other_issuer,
        "another issuer",
    );
}

#[tokio::test]
async fn forged_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.issuer.claims(AUDIENCE, &["registry:admin"]);

    // No signature at all: refused by its algorithm, which the message names.
    let none = app.issuer.token_alg_none(admin.clone());
    assert_invalid_token(
        &list_services(&app, &none).await,
        &none,
        "`none` are not accepted",
    );

    // HS256 keyed with rsa-1's public key: valid HMAC, refused by algorithm.
    let confused = app.issuer.token_hs256_with_public_key(admin.clone());
    assert_invalid_token(&list_services(&app, &confused).await, &confused, "HS256");

    // A reader's token with `registry:admin` added, original signature kept.
    let reader = app.issuer.token(reader_claims(&app.issuer));
    assert_ok(&list_services(&app, &reader).await);
    let promoted = TestIssuer::tampered(&reader, |claims| {
        claims["permissions"] = json!(["registry:read", "registry:admin"]);
    });
    assert_invalid_token(
        &list_services(&app, &promoted).await,
        &promoted,
        "signature does not verify",
    );
    let ec = app.issuer.token_with("ec-1", reader_claims(&app.issuer));
    let promoted = TestIssuer::tampered(&ec, |claims| {
        claims["permissions"] = json!(["registry:admin"]);
    });
    assert_invalid_token(
        &list_services(&app, &promoted).await,
        &promoted,
        "signature does not verify",
    );
}

#[tokio::test]
async fn malformed_credentials_are_refused() {
    let app = TestApp::spawn().await;
    let url = format!("{}{SERVICES}", app.registry_url);

    let answer = send(Method::GET, &url, Some("Bearer not-a-jwt")).await;
    assert_invalid_token(&answer, "not-a-jwt", "not a usable JWT");

    // user:correct-horse-battery
    let basic = "dXNlcjpjb3JyZWN0LWhvcnNlLWJhdHRlcnk=";
    let answer = send(Method::GET, &url, Some(&format!("Basic {basic}"))).await;
    assert_invalid_token(&answer, basic, "Bearer <token>");

    let answer = send(Method::GET, &url, Some("Bearer")).await;
    assert_invalid_token(&answer, "", "Bearer <token>");
}

#[tokio::test]
async fn tokens_missing_a_required_claim_are_refused() {
    let app = TestApp::spawn().await;
    for claim in ["sub", "aud", "exp", "iss"] {
        let mut claims = reader_claims(&app.issuer);
        claims.as_object_mut().unwrap().remove(claim);
        let token = app.issuer.token(claims);
        let answer = list_services(&app, &token).await;
        assert_invalid_token(&answer, &token, &format!("`{claim}`"));
    }
}

#[tokio::test]
async fn a_token_from_a_newly_published_key_is_accepted_after_a_refetch() {
    let app = TestApp::spawn().await;
    let kid = app.issuer.add_unpublished_key(KeyAlg::Rs256);
    let token = app.issuer.token_with(&kid, reader_claims(&app.issuer));

    let answer = list_services(&app, &token).await;
    assert_invalid_token(&answer, &token, &format!("unknown key `{kid}`"));
    assert_eq!(app.issuer.jwks_fetches(), 1);

    // The issuer rotates: the unknown kid makes the verifier fetch again.
    app.issuer.publish(&kid);
    assert_ok(&list_services(&app, &token).await);
    assert_eq!(app.issuer.jwks_fetches(), 2);
    // Now cached: no further fetch.
    assert_ok(&list_services(&app, &token).await);
    assert_eq!(app.issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn an_unpublished_key_is_refused_once_the_keys_are_fetched_again() {
    let app = TestApp::spawn().await;
    let kid = app.issuer.add_key(KeyAlg::Es256);
    let token = app.issuer.token_with(&kid, reader_claims(&app.issuer));
    assert_ok(&list_services(&app, &token).await);
    assert_eq!(app.issuer.jwks_fetches(), 1);

    app.issuer.unpublish(&kid);
    // Fetched keys are cached for `jwks_ttl` by design (jwt.rs: "How long
    // fetched keys are used before they are fetched again"), so the key
    // still verifies until the next fetch.
    assert_ok(&list_services(&app, &token).await);
    assert_eq!(app.issuer.jwks_fetches(), 1);

    // Any fetch replaces the whole set: here one caused by an unknown kid.
    let newer = app.issuer.add_unpublished_key(KeyAlg::Rs256);
    let unknown = app.issuer.token_with(&newer, reader_claims(&app.issuer));
    assert_invalid_token(
        &list_services(&app, &unknown).await,
        &unknown,
        &format!("unknown key `{newer}`"),
    );
    assert_eq!(app.issuer.jwks_fetches(), 2);
    assert_invalid_token(
        &list_services(&app, &token).await,
        &token,
        &format!("unknown key `{kid}`"),
    );
    // Keys still published keep working.
    let rs = app.issuer.token(reader_claims(&app.issuer));
    assert_ok(&list_services(&app, &rs).await);
}

#[tokio::test]
async fn unknown_kids_cannot_make_the_verifier_hammer_the_issuer() {
    let app = TestApp::spawn_with(oidc(|o| o.min_refresh = Duration::from_secs(3600))).await;
    assert_eq!(app.issuer.jwks_fetches(), 0);

    // 20 tokens, each signed by a real key of the issuer's that it never
    // published: every one names a kid the verifier has not seen.
    let tokens: Vec<(String, String)> = (0..20)
        .map(|_| {
            let kid = app.issuer.add_unpublished_key(KeyAlg::Es256);
            let token = app.issuer.token_with(&kid, reader_claims(&app.issuer));
            (kid, token)
        })
        .collect();

    // The first one causes the first fetch...
    let (kid, token) = &tokens[0];
    assert_invalid_token(
        &list_services(&app, token).await,
        token,
        &format!("unknown key `{kid}`"),
    );
    assert_eq!(app.issuer.jwks_fetches(), 1);

    // ...the other 19, all at once, none.
    let answers =
        futures::future::join_all(tokens[1..].iter().map(|(_, t)| list_services(&app, t))).await;
    for ((kid, token), answer) in tokens[1..].iter().zip(&answers) {
        assert_invalid_token(answer, token, &format!("unknown key `{kid}`"));
    }
    assert_eq!(app.issuer.jwks_fetches(), 1);

    // Keys already fetched go on working without a fetch.
    let good = app.issuer.token(reader_claims(&app.issuer));
    assert_ok(&list_services(&app, &good).await);
    assert_eq!(app.issuer.jwks_fetches(), 1);
}

#[tokio::test]
async fn an_unreachable_issuer_answers_503_not_401() {
    let port = closed_port();
    let app = TestApp::spawn_with(oidc(move |o| {
        o.issuer = format!("http://127.0.0.1:{port}");
    }))
    .await;

    // A well-formed token that would be valid: we cannot tell, so 503.
    let token = app.token(mcpo_test_support::app::ALL_PERMISSIONS);
    let bearer = format!("Bearer {token}");
    for (method, url) in [
        (Method::GET, format!("{}{SERVICES}", app.registry_url)),
        (Method::POST, format!("{}/tools/x/y", app.executor_url)),
        (Method::GET, format!("{}/openapi.json", app.publisher_url)),
    ] {
        let answer = send(method.clone(), &url, Some(&bearer)).await;
        assert_eq!(answer.status, 503, "{method} {url}: {answer:#?}");
        assert_eq!(answer.code(), "auth_unavailable", "{answer:#?}");
        assert!(answer.message().contains("retry later"), "{answer:#?}");
        let retry_after: u64 = answer
            .retry_after
            .as_deref()
            .expect("a Retry-After header")
            .parse()
            .expect("Retry-After in seconds");
        assert!(retry_after > 0);
        assert_not_echoed(&answer, &token);
    }
    // The app's own issuer was never asked.
    assert_eq!(app.issuer.jwks_fetches(), 0);

    // What can be refused without the issuer's keys still is a 401.
    let answer = list_services(&app, "not-a-jwt").await;
    assert_invalid_token(&answer, "not-a-jwt", "not a usable JWT");
    let confused = app
        .issuer
        .token_hs256_with_public_key(reader_claims(&app.issuer));
    assert_invalid_token(&list_services(&app, &confused).await, &confused, "HS256");
}

/// A TCP forwarder that accepts connections at once but forwards none of them
/// until `release`: an issuer that answers slowly, under the test's control.
struct HeldProxy {
    url: String,
    accepted: Arc<AtomicUsize>,
    release: tokio::sync::watch::Sender<bool>,
    accept: tokio::task::AbortHandle,
}

impl HeldProxy {
    async fn start(target: SocketAddr) -> HeldProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let counter = accepted.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut released = released.clone();
                tokio::spawn(async move {
                    if released.wait_for(|open| *open).await.is_err() {
                        return;
                    }
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        })
        .abort_handle();
        HeldProxy {
            url,
            accepted,
            release,
            accept,
        }
    }

    fn release(&self) {
        self.release.send_replace(true);
    }
}

impl Drop for HeldProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

// Requests that arrive while the first key fetch is in flight wait for it
// (with the production `min_refresh`), instead of failing with 503 or
// "unknown key": the fetch's rate limit must not hide its own result.
#[tokio::test]
async fn requests_arriving_during_a_key_fetch_wait_for_it() {
    let issuer = TestIssuer::start().await;
    let target: SocketAddr = issuer
        .issuer()
        .strip_prefix("http://")
        .unwrap()
        .parse()
        .unwrap();
    let proxy = HeldProxy::start(target).await;
    let proxy_url = proxy.url.clone();
    // The proxy stands for the issuer: discovery names it, tokens carry it.
    issuer.advertise_as(&proxy_url);
    // Discovery goes through the slow proxy; the rate limit is production's.
    let app = TestApp::spawn_with(oidc(move |o| {
        o.issuer = proxy_url;
        o.min_refresh = Duration::from_secs(30);
    }))
    .await;
    let registry = app.registry_url.clone();
    let request = |token: String| {
        let registry = registry.clone();
        tokio::spawn(async move {
            send(
                Method::GET,
                &format!("{registry}{SERVICES}"),
                Some(&format!("Bearer {token}")),
            )
            .await
        })
    };

    let first = request(issuer.token(reader_claims(&issuer)));
    eventually(
        "the first request is fetching the keys",
        async || match proxy.accepted.load(Ordering::SeqCst) {
            0 => Err("no connection to the issuer yet"),
            _ => Ok(()),
        },
    )
    .await;
    let mut second = request(issuer.token_with("ec-1", reader_claims(&issuer)));
    // Not a synchronisation: a correct verifier holds the second request
    // until the fetch ends, whatever this bound; a wrong one answers within
    // it (if it does not, the test passes without having shown anything).
    if let Ok(early) = tokio::time::timeout(Duration::from_secs(2), &mut second).await {
        let early = early.unwrap();
        panic!("the second request was answered while the keys were being fetched: {early:#?}");
    }
    proxy.release();
    assert_ok(&first.await.unwrap());
    assert_ok(&second.await.unwrap());
    assert_eq!(issuer.jwks_fetches(), 1);
}

#[tokio::test]
async fn permissions_come_from_the_configured_claim_only() {
    // By default `permissions`: a `scope` a client asked for grants nothing.
    let app = TestApp::spawn().await;
    let mut claims = app.issuer.claims(AUDIENCE, &[]);
    claims.as_object_mut().unwrap().remove("permissions");
    claims["scope"] = json!("openid profile registry:read");
    let token = app.issuer.token(claims.clone());
    assert_permission_denied(&list_services(&app, &token).await, &token, "registry:read");

    // Configured to read `scope`, the same token may read.
    let app = TestApp::spawn_with(|settings| {
        if let mcpo_core::auth::AuthSettings::Enforced {
            oidc: Some(oidc), ..
        } = &mut settings.auth
        {
            oidc.permissions_claim = "scope".into();
        }
    })
    .await;
    let mut claims = app.issuer.claims(AUDIENCE, &[]);
    claims["scope"] = json!("openid profile registry:read");
    let token = app.issuer.token(claims);
    assert_ok(&list_services(&app, &token).await);

    // Read only: registering needs `registry:write`.
    let answer = Answer::of(
        mcpo_test_support::app::authorized_client(&token)
            .post(format!("{}{SERVICES}", app.registry_url))
            .json(&stdio_fixture("fx", None))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_permission_denied(&answer, &token, "registry:write");
}

#[tokio::test]
async fn unknown_permissions_grant_nothing() {
    let app = TestApp::spawn().await;
    let wildcard = app.token(&["registry:*", "*", "admin"]);
    assert_permission_denied(
        &list_services(&app, &wildcard).await,
        &wildcard,
        "registry:read",
    );

    let mut claims = app.issuer.claims(AUDIENCE, &[]);
    claims["permissions"] = json!("registry:* openapi:*");
    let token = app.issuer.token(claims);
    assert_permission_denied(&list_services(&app, &token).await, &token, "registry:read");
    let answer = send(
        Method::GET,
        &format!("{}/openapi.json", app.publisher_url),
        Some(&format!("Bearer {token}")),
    )
    .await;
    assert_permission_denied(&answer, &token, "openapi:read");
}

/// OIDC Discovery §4.3: a discovery document naming another issuer is not
/// trusted, so no key from it verifies anything.
#[tokio::test]
async fn a_discovery_document_for_another_issuer_is_not_trusted() {
    let app = TestApp::spawn().await;
    let token = app.token(&["registry:read"]);
    app.issuer.advertise_as("https://impostor.example");
    let answer = list_services(&app, &token).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.body["code"], "auth_unavailable");
}
