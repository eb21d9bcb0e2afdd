//! Authentication and authorization for every MCPO service.
//!
//! The `authenticate` middleware runs on every route but the health probes:
//! it turns the request's credentials (an OAuth2 access token or an MCPO API
//! key) into a [`Principal`], or answers 401. Handlers then declare what they
//! need with the [`Authorized`] extractor (`Authorized<RegistryWrite>`), which
//! answers 403 when the principal lacks it. A handler that forgets to declare
//! a permission is still closed to anonymous callers, and the route matrix
//! test catches it.

pub mod api_key;
pub mod document;
pub mod jwt;
pub mod permission;
pub mod principal;

use std::future::{ready, Ready};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, ResponseError};

pub use api_key::ApiKeys;
pub use jwt::{JwtVerifier, OidcSettings};
pub use permission::{invoke_permission, Grants, Permission};
pub use principal::{Actor, Principal, PrincipalKind};

use crate::db::DbPool;
use crate::error::{ApiError, ErrorCode};

pub const API_KEY_HEADER: &str = "x-api-key";
const REALM: &str = "mcpo";
/// Probes answer without credentials: orchestrators cannot log in.
const PUBLIC_PATHS: &[&str] = &["/healthz", "/readyz"];

#[derive(Debug, Clone)]
pub enum AuthSettings {
    /// `MCPO_AUTH=disabled`: every caller may do everything. Local use only.
    Disabled,
    Enforced {
        /// `None`: only API keys are accepted.
        oidc: Option<OidcSettings>,
        /// How long a checked API key is trusted without asking Postgres again.
        api_key_cache: Duration,
    },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("send `Authorization: Bearer <access token or API key>`")]
    Missing,
    #[error("{0}")]
    InvalidToken(String),
    #[error("this needs the permission `{required}`")]
    Forbidden { required: String },
    #[error("{0}")]
    Unavailable(String),
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Missing => ApiError::new(
                ErrorCode::Unauthenticated,
                "authentication required: send `Authorization: Bearer <access token or API key>`",
            )
            .with_challenge(format!("Bearer realm=\"{REALM}\"")),
            AuthError::InvalidToken(reason) => {
                ApiError::new(ErrorCode::InvalidToken, reason.clone()).with_challenge(format!(
                    "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
                    header_safe(&reason)
                ))
            }
            AuthError::Forbidden { required } => ApiError::new(
                ErrorCode::PermissionDenied,
                format!("this needs the permission `{required}`, which the caller was not granted"),
            )
            .with_details(serde_json::json!({ "required": required }))
            .with_challenge(format!(
                "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{required}\""
            )),
            AuthError::Unavailable(reason) => {
                tracing::warn!(%reason, "credentials cannot be checked");
                ApiError::new(
                    ErrorCode::AuthUnavailable,
                    "credentials cannot be checked right now (identity provider or database unreachable); retry later",
                )
                .with_retry_after(5)
            }
        }
    }
}

/// Text fit for a quoted header parameter: printable ASCII without quotes or
/// backslashes (a token's `kid` is echoed in messages), at most 200 characters.
fn header_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .take(200)
        .collect()
}

/// Turns credentials into a principal. One per process, shared by workers.
pub struct Authenticator {
    mode: Mode,
}

enum Mode {
    Disabled,
    Enforced {
        jwt: Option<Arc<JwtVerifier>>,
        api_keys: ApiKeys,
    },
}

impl Authenticator {
    pub fn new(settings: &AuthSettings, pool: DbPool) -> Authenticator {
        let mode = match settings {
            AuthSettings::Disabled => Mode::Disabled,
            AuthSettings::Enforced {
                oidc,
                api_key_cache,
            } => Mode::Enforced {
                jwt: oidc.clone().map(|o| Arc::new(JwtVerifier::new(o))),
                api_keys: ApiKeys::new(pool, *api_key_cache),
            },
        };
        Authenticator { mode }
    }

    /// One line for the startup log and `mcpo up`'s banner.
    pub fn describe(&self) -> String {
        match &self.mode {
            Mode::Disabled => {
                "DISABLED (MCPO_AUTH=disabled): every caller has every permission; never expose this".into()
            }
            Mode::Enforced { jwt: Some(jwt), .. } => format!(
                "OAuth2 tokens from {} for audience `{}`, and API keys",
                jwt.settings().issuer,
                jwt.settings().audience
            ),
            Mode::Enforced { jwt: None, .. } => {
                "API keys only (no MCPO_AUTH_ISSUER configured)".into()
            }
        }
    }

    pub fn is_disabled(&self) -> bool {
        matches!(self.mode, Mode::Disabled)
    }

    /// Forgets cached API keys, so a revocation here takes effect at once.
    pub fn forget_api_keys(&self) {
        if let Mode::Enforced { api_keys, .. } = &self.mode {
            api_keys.forget_all();
        }
    }

    pub async fn authenticate(&self, req: &HttpRequest) -> Result<Principal, AuthError> {
        let (jwt, api_keys) = match &self.mode {
            Mode::Disabled => return Ok(Principal::development()),
            Mode::Enforced { jwt, api_keys } => (jwt, api_keys),
        };
        let bearer = match req.headers().get(AUTHORIZATION) {
            Some(value) => {
                let value = value.to_str().map_err(|_| {
                    AuthError::InvalidToken("the Authorization header is not text".into())
                })?;
                let (scheme, credential) = value.split_once(' ').unwrap_or((value, ""));
                if !scheme.eq_ignore_ascii_case("bearer") || credential.trim().is_empty() {
                    return Err(AuthError::InvalidToken(
                        "the Authorization header must be `Bearer <token>`".into(),
                    ));
                }
                Some(credential.trim())
            }
            None => None,
        };
        let api_key = req
            .headers()
            .get(API_KEY_HEADER)
            .map(|v| {
                v.to_str()
                    .map_err(|_| AuthError::InvalidToken("the X-Api-Key header is not text".into()))
            })
            .transpose()?;
        match (bearer, api_key) {
            (None, None) => Err(AuthError::Missing),
            (Some(_), Some(_)) => Err(AuthError::InvalidToken(
                "send either a bearer token or X-Api-Key, not both".into(),
            )),
            (None, Some(key)) => api_keys.verify(key).await,
            (Some(token), None) if api_key::prefix_of(token).is_some() => {
                api_keys.verify(token).await
            }
            (Some(token), None) => match jwt {
                Some(jwt) => jwt.verify(token).await,
                None => Err(AuthError::InvalidToken(
                    "this deployment accepts API keys only; no token issuer is configured".into(),
                )),
            },
        }
    }
}

/// The middleware: authenticates every request but the probes and stores the
/// principal in the request's extensions.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if PUBLIC_PATHS.contains(&req.path()) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let outcome = match req.app_data::<web::Data<Authenticator>>() {
        Some(authenticator) => authenticator.authenticate(req.request()).await,
        // Fail closed: a service built without an authenticator serves nothing.
        None => Err(AuthError::Unavailable(
            "no authenticator is configured".into(),
        )),
    };
    match outcome {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(error) => {
            let response = ApiError::from(error).error_response();
            Ok(req.into_response(response).map_into_boxed_body())
        }
    }
}

/// A permission a handler declares with [`Authorized`].
pub trait Requirement {
    const PERMISSION: Permission;
}

macro_rules! requirements {
    ($($name:ident => $permission:ident),+ $(,)?) => {
        $(
            #[derive(Debug)]
            pub struct $name;
            impl Requirement for $name {
                const PERMISSION: Permission = Permission::$permission;
            }
        )+
    };
}

requirements! {
    RegistryRead => RegistryRead,
    RegistryWrite => RegistryWrite,
    RegistryAdmin => RegistryAdmin,
    ToolsInvoke => ToolsInvoke,
    OpenapiRead => OpenapiRead,
}

/// An authenticated caller holding `R`'s permission; derefs to [`Caller`].
#[derive(Debug)]
pub struct Authorized<R> {
    caller: Caller,
    requirement: PhantomData<R>,
}

impl<R> std::ops::Deref for Authorized<R> {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.caller
    }
}

/// An authenticated caller and the actor the audit trail records for it. As
/// an extractor it only requires authentication: for handlers that check a
/// permission themselves (such as per-service tool invocation).
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub actor: Actor,
}

impl Caller {
    /// MCPO acting on its own behalf (`mcpo up --demo`, `mcpo import`).
    pub fn system(name: &str) -> Caller {
        Caller {
            principal: Principal::system(name),
            actor: Actor::system(name),
        }
    }

    pub fn require(&self, permission: Permission) -> Result<(), AuthError> {
        require(&self.principal, permission)
    }

    /// Whose share of the executor a call uses: the principal, or in dev
    /// mode (where everybody is the same principal) the client address.
    pub fn key(&self) -> String {
        match self.principal.kind {
            PrincipalKind::Development => self
                .actor
                .client_addr
                .clone()
                .unwrap_or_else(|| self.principal.subject.clone()),
            _ => self.principal.subject.clone(),
        }
    }

    pub fn require_invoke(&self, service: &str) -> Result<(), AuthError> {
        if self.principal.grants.allows_invoke(service) {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                required: invoke_permission(service),
            })
        }
    }
}

pub fn require(principal: &Principal, permission: Permission) -> Result<(), AuthError> {
    if principal.grants.allows(permission) {
        Ok(())
    } else {
        Err(AuthError::Forbidden {
            required: permission.as_str().to_owned(),
        })
    }
}

fn caller_of(req: &HttpRequest) -> Result<Caller, AuthError> {
    let principal = req
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or(AuthError::Missing)?;
    let actor = Actor::new(
        &principal,
        crate::http::request_id(req),
        req.peer_addr().map(|a| a.ip().to_string()),
    );
    Ok(Caller { principal, actor })
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(caller_of(req).map_err(ApiError::from))
    }
}

impl<R: Requirement> FromRequest for Authorized<R> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            caller_of(req)
                .and_then(|caller| {
                    caller.require(R::PERMISSION)?;
                    Ok(Authorized {
                        caller,
                        requirement: PhantomData,
                    })
                })
                .map_err(ApiError::from),
        )
    }
}
