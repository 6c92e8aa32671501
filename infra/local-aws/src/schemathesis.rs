//! schemathesis (PyPI, in the project's `.venv`), as the project's tests run it: against a URL,
//! with a config file and an OpenAPI document, a fixed seed and number of examples that
//! `SCHEMATHESIS_SEED` and `SCHEMATHESIS_MAX_EXAMPLES` override, in a work directory under
//! `target/`, without colours.

use std::path::Path;
use std::process::Command;

use crate::{Error, project_root};

/// What one run is given.
pub struct Run<'a> {
    /// The work directory's name under `target/` (schemathesis writes its state there).
    pub workdir: &'a str,
    pub config: &'a Path,
    pub spec: &'a Path,
    pub url: &'a str,
    pub workers: u32,
    pub seed: &'a str,
    pub max_examples: &'a str,
}

impl Run<'_> {
    /// The command; the caller adds what is particular to it and runs it.
    pub fn command(&self) -> Result<Command, Error> {
        let st = project_root().join(".venv/bin/st");
        if !st.exists() {
            return Err(Error::PythonMissing { path: st, tool: "schemathesis" });
        }
        let workdir = project_root().join("target").join(self.workdir);
        std::fs::create_dir_all(&workdir)
            .map_err(|e| Error::Start("schemathesis", format!("{}: {e}", workdir.display())))?;
        let mut command = Command::new(st);
        command
            .current_dir(&workdir)
            .arg("--config-file")
            .arg(self.config)
            .arg("run")
            .arg(self.spec)
            .args(["--url", self.url, "--workers", &self.workers.to_string()])
            .args(["--seed", &std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| self.seed.to_owned())])
            .args([
                "--max-examples",
                &std::env::var("SCHEMATHESIS_MAX_EXAMPLES").unwrap_or_else(|_| self.max_examples.to_owned()),
            ])
            .arg("--no-color")
            .env("NO_COLOR", "1");
        Ok(command)
    }
}
