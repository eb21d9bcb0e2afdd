//! Who is calling.

use serde::Serialize;
use uuid::Uuid;

use super::permission::Grants;

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An OAuth2 access token from the configured issuer.
    User,
    /// An MCPO API key.
    ApiKey { id: Uuid },
    /// `MCPO_AUTH=disabled`: nobody was checked.
    Development,
    /// MCPO itself (`mcpo up --demo`, the CLI), never an HTTP caller.
    System,
}

impl PrincipalKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::ApiKey { .. } => "api_key",
            PrincipalKind::Development => "development",
            PrincipalKind::System => "system",
        }
    }
}

/// An authenticated caller with what it was granted.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's `sub`, `api-key:{name}`, or a fixed name in dev mode.
    pub subject: String,
    pub kind: PrincipalKind,
    pub grants: Grants,
}

impl Principal {
    pub fn development() -> Principal {
        Principal {
            subject: "anonymous (MCPO_AUTH=disabled)".into(),
            kind: PrincipalKind::Development,
            grants: Grants::everything(),
        }
    }

    pub fn system(name: &str) -> Principal {
        Principal {
            subject: name.to_owned(),
            kind: PrincipalKind::System,
            grants: Grants::everything(),
        }
    }
}

/// A principal plus where its request came from: what the audit trail records.
#[derive(Debug, Clone, Serialize)]
pub struct Actor {
    pub subject: String,
    pub kind: &'static str,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
}

impl Actor {
    pub fn new(
        principal: &Principal,
        request_id: Option<String>,
        client_addr: Option<String>,
    ) -> Actor {
        Actor {
            subject: principal.subject.clone(),
            kind: principal.kind.as_str(),
            request_id,
            client_addr,
        }
    }

    pub fn system(name: &str) -> Actor {
        Actor::new(&Principal::system(name), None, None)
    }
}
