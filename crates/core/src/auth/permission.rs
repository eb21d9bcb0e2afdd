//! Permissions, as an identity provider grants them (Auth0's `permissions`
//! claim or an OAuth `scope`) and as API keys carry them.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// What a route can require. Higher registry levels include the lower ones
/// (`registry:admin` ⊃ `registry:write` ⊃ `registry:read`), and `tools:invoke`
/// covers every per-service `tools:invoke:{service}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Permission {
    #[serde(rename = "registry:read")]
    RegistryRead,
    #[serde(rename = "registry:write")]
    RegistryWrite,
    /// stdio services, secrets in exports, API keys, the audit trail.
    #[serde(rename = "registry:admin")]
    RegistryAdmin,
    #[serde(rename = "tools:invoke")]
    ToolsInvoke,
    #[serde(rename = "openapi:read")]
    OpenapiRead,
}

impl Permission {
    pub const ALL: [Permission; 5] = [
        Permission::RegistryRead,
        Permission::RegistryWrite,
        Permission::RegistryAdmin,
        Permission::ToolsInvoke,
        Permission::OpenapiRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::RegistryRead => "registry:read",
            Permission::RegistryWrite => "registry:write",
            Permission::RegistryAdmin => "registry:admin",
            Permission::ToolsInvoke => "tools:invoke",
            Permission::OpenapiRead => "openapi:read",
        }
    }

    /// The grants that satisfy this permission.
    fn satisfied_by(self) -> &'static [&'static str] {
        match self {
            Permission::RegistryRead => &["registry:read", "registry:write", "registry:admin"],
            Permission::RegistryWrite => &["registry:write", "registry:admin"],
            Permission::RegistryAdmin => &["registry:admin"],
            Permission::ToolsInvoke => &["tools:invoke"],
            Permission::OpenapiRead => &["openapi:read"],
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const INVOKE_PREFIX: &str = "tools:invoke:";

/// The per-service permission that lets a caller invoke one service's tools.
pub fn invoke_permission(service: &str) -> String {
    format!("{INVOKE_PREFIX}{service}")
}

/// Whether `grant` is a permission MCPO knows (API keys may only carry these).
pub fn is_known_grant(grant: &str) -> bool {
    Permission::ALL.iter().any(|p| p.as_str() == grant)
        || grant
            .strip_prefix(INVOKE_PREFIX)
            .is_some_and(|service| crate::domain::naming::validate_service_name(service).is_ok())
}

/// What a caller was granted. Unknown grants are kept (they may be meant for
/// another API) but never satisfy anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    grants: BTreeSet<String>,
    /// Development mode: everything is allowed.
    everything: bool,
}

impl Grants {
    pub fn new<I, S>(grants: I) -> Grants
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Grants {
            grants: grants.into_iter().map(Into::into).collect(),
            everything: false,
        }
    }

    pub fn everything() -> Grants {
        Grants {
            grants: BTreeSet::new(),
            everything: true,
        }
    }

    pub fn allows(&self, permission: Permission) -> bool {
        self.everything
            || permission
                .satisfied_by()
                .iter()
                .any(|g| self.grants.contains(*g))
    }

    /// `tools:invoke`, or `tools:invoke:{service}`.
    pub fn allows_invoke(&self, service: &str) -> bool {
        self.allows(Permission::ToolsInvoke) || self.grants.contains(&invoke_permission(service))
    }

    /// Whether every grant of `other` is also allowed here (a caller cannot
    /// hand out more than it has).
    pub fn covers(&self, other: &Grants) -> bool {
        self.everything
            || other.grants.iter().all(|grant| {
                if let Some(p) = Permission::ALL.iter().find(|p| p.as_str() == grant) {
                    self.allows(*p)
                } else if let Some(service) = grant.strip_prefix(INVOKE_PREFIX) {
                    self.allows_invoke(service)
                } else {
                    self.grants.contains(grant)
                }
            })
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.grants.iter().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_levels_include_the_lower_ones() {
        let admin = Grants::new(["registry:admin"]);
        assert!(admin.allows(Permission::RegistryRead));
        assert!(admin.allows(Permission::RegistryWrite));
        assert!(!admin.allows(Permission::ToolsInvoke));
        let read = Grants::new(["registry:read"]);
        assert!(!read.allows(Permission::RegistryWrite));
        assert!(!read.allows(Permission::OpenapiRead));
    }

    #[test]
    fn per_service_invoke() {
        let one = Grants::new(["tools:invoke:demo"]);
        assert!(one.allows_invoke("demo"));
        assert!(!one.allows_invoke("other"));
        assert!(!one.allows(Permission::ToolsInvoke));
        assert!(Grants::new(["tools:invoke"]).allows_invoke("other"));
    }

    #[test]
    fn unknown_grants_satisfy_nothing() {
        let odd = Grants::new(["registry:*", "admin", "openid"]);
        assert!(Permission::ALL.iter().all(|p| !odd.allows(*p)));
        assert!(!is_known_grant("registry:*"));
        assert!(is_known_grant("tools:invoke:my-service"));
        assert!(!is_known_grant("tools:invoke:Bad Name"));
    }

    #[test]
    fn covers_compares_by_meaning() {
        let writer = Grants::new(["registry:write", "tools:invoke"]);
        assert!(writer.covers(&Grants::new(["registry:read", "tools:invoke:x"])));
        assert!(!writer.covers(&Grants::new(["registry:admin"])));
        assert!(Grants::everything().covers(&Grants::new(["registry:admin"])));
    }
}
