//! Generates a Python client from a published document with PyPI's
//! `openapi-python-client` (a standard generator users run), installed by the
//! README's test command into the tools venv, and runs code against it.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::openapi::python;

/// A generated client package, `client`, in a temporary directory removed on drop.
pub struct GeneratedClient {
    pub dir: PathBuf,
}

impl GeneratedClient {
    /// Panics with the generator's output when it refuses the document.
    pub fn generate(doc: &Value) -> GeneratedClient {
        let dir =
            std::env::temp_dir().join(format!("mcpo-client-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let document = dir.join("openapi.json");
        std::fs::write(&document, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
        // No post hooks: they run formatters (ruff) the venv does not need.
        let config = dir.join("generator.yaml");
        std::fs::write(&config, "post_hooks: []\n").unwrap();
        let generator = python().with_file_name("openapi-python-client");
        let output = std::process::Command::new(&generator)
            .arg("generate")
            .arg("--path")
            .arg(&document)
            .arg("--config")
            .arg(&config)
            .arg("--output-path")
            .arg(dir.join("client"))
            .args(["--meta", "none", "--fail-on-warning"])
            .output()
            .unwrap_or_else(|e| panic!("{} runs: {e}", generator.display()));
        assert!(
            output.status.success(),
            "openapi-python-client refused the document:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        GeneratedClient { dir }
    }

    /// Runs `script` with the generated package importable as `client`;
    /// gives its stdout, panics with its output when it fails.
    pub fn run(&self, script: &str) -> String {
        let file = self.dir.join("driver.py");
        std::fs::write(&file, script).unwrap();
        let output = std::process::Command::new(python())
            .arg(&file)
            .env("PYTHONPATH", &self.dir)
            .current_dir(&self.dir)
            .output()
            .expect("python runs");
        assert!(
            output.status.success(),
            "the script against the generated client failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for GeneratedClient {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
