//! Names that end up in URL paths: service names and tool endpoint names.

use std::collections::HashSet;

pub const MAX_SERVICE_NAME_LEN: usize = 64;

/// Service names are path segments and NATS-friendly identifiers: lowercase
/// ASCII letters, digits, `-` and `_`, starting with a letter or digit.
pub fn validate_service_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_SERVICE_NAME_LEN {
        return Err(format!(
            "must be 1 to {MAX_SERVICE_NAME_LEN} characters long"
        ));
    }
    let mut chars = name.chars();
    let first = chars.next().unwrap_or('-');
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err("must start with a lowercase letter or a digit".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err("may contain only lowercase letters, digits, '-' and '_'".into());
    }
    Ok(())
}

/// Maps MCP tool names to path segments, one per tool, stable for a given list.
///
/// A name made of `A-Z a-z 0-9 - _ .` is kept as it is (except `.` and `..`,
/// which paths treat specially). Any other character becomes `_`. When two
/// tools map to the same segment, the later ones (in list order) get `-2`, `-3`…
pub fn endpoint_names<'a>(tool_names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut taken = HashSet::new();
    tool_names
        .into_iter()
        .map(|name| {
            let base = sanitize(name);
            let mut candidate = base.clone();
            let mut n = 2;
            while !taken.insert(candidate.clone()) {
                candidate = format!("{base}-{n}");
                n += 1;
            }
            candidate
        })
        .collect()
}

fn sanitize(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match mapped.as_str() {
        "" => "_".into(),
        "." | ".." => mapped.replace('.', "_"),
        _ => mapped,
    }
}

/// The executor path of a tool.
pub fn endpoint_path(service: &str, endpoint_name: &str) -> String {
    format!("/tools/{service}/{endpoint_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names() {
        assert!(validate_service_name("everything-1").is_ok());
        assert!(validate_service_name("a_b").is_ok());
        assert!(validate_service_name("").is_err());
        assert!(validate_service_name("-x").is_err());
        assert!(validate_service_name("Upper").is_err());
        assert!(validate_service_name("a/b").is_err());
        assert!(validate_service_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn endpoint_names_are_safe_and_unique() {
        let names = endpoint_names(["echo", "get/user", "get user", "..", "ünï", "get_user"]);
        assert_eq!(
            names,
            ["echo", "get_user", "get_user-2", "__", "_n_", "get_user-3"]
        );
    }
}
