//! Checks a document with PyPI's `openapi-spec-validator`, installed by the
//! README's test command into `$MCPO_TOOLS_DIR/venv` (default `~/.cache/mcpo-tools`).

use std::path::PathBuf;

use serde_json::Value;

pub(crate) fn python() -> PathBuf {
    if let Ok(python) = std::env::var("MCPO_TEST_PYTHON") {
        return python.into();
    }
    let tools = std::env::var("MCPO_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/mcpo-tools")
        });
    tools.join("venv/bin/python")
}

/// Panics with the validator's findings when the document is not valid
/// OpenAPI of the version it declares.
pub fn validate_openapi(doc: &Value) {
    run_validator(doc, "detect");
}

/// Like [`validate_openapi`], holding the document to one version of the
/// specification (`"3.0"`, `"3.1"`), whatever it declares; panics too when it
/// declares another.
pub fn validate_openapi_version(doc: &Value, version: &str) {
    let declared = doc["openapi"].as_str().unwrap_or_default();
    assert!(
        declared.starts_with(&format!("{version}.")),
        "the document declares OpenAPI {declared:?}, not {version}"
    );
    run_validator(doc, version);
}

fn run_validator(doc: &Value, version: &str) {
    let python = python();
    assert!(
        python.exists(),
        "{} is missing: run the README's test command, which installs openapi-spec-validator",
        python.display()
    );
    let file = std::env::temp_dir().join(format!(
        "mcpo-openapi-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&file, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    let output = std::process::Command::new(&python)
        .args(["-m", "openapi_spec_validator", "--validation-errors", "all"])
        .args(["--schema", version])
        .arg(&file)
        .output()
        .expect("the validator runs");
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "the document is not valid OpenAPI:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs schemathesis against a live API described by `schema_url`; panics
/// with its report when it finds a 5xx, a response the document does not
/// allow, or any other failed check. `args` narrow the run.
pub fn schemathesis(schema_url: &str, args: &[&str]) {
    schemathesis_with_config(schema_url, args, "")
}

/// Like [`schemathesis`], with a `schemathesis.toml` (per-operation
/// expectations the document cannot express).
pub fn schemathesis_with_config(schema_url: &str, args: &[&str], config: &str) {
    // Its own directory: schemathesis keeps a cache where it runs.
    let workdir = std::env::temp_dir().join(format!(
        "mcpo-schemathesis-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&workdir).unwrap();
    let config_file = workdir.join("schemathesis.toml");
    std::fs::write(&config_file, config).unwrap();
    let python = python();
    let st = python.with_file_name("st");
    assert!(
        st.exists(),
        "{} is missing: run the README's test command, which installs schemathesis",
        st.display()
    );
    let output = std::process::Command::new(&st)
        .arg("--config-file")
        .arg(&config_file)
        .args([
            "run",
            schema_url,
            "--checks",
            "all",
            "--max-examples",
            "25",
            // One worker: with threads, CPython 3.11's `ast.parse` (used by
            // hypothesis to describe lambdas) fails now and then with
            // "AST constructor recursion depth mismatch".
            "--workers",
            "1",
        ])
        .args(args)
        .current_dir(&workdir)
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("schemathesis runs");
    let _ = std::fs::remove_dir_all(&workdir);
    // Shown by the test runner with the test's output (`--no-capture`).
    eprintln!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
