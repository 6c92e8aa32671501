//! Local AWS for tests and for the local system: starts moto in server mode on 127.0.0.1 and
//! provisions it from `template.yaml`, so tables, keys, indexes and streams are declared once.
//!
//! ```no_run
//! # async fn demo() -> Result<(), local_aws::Error> {
//! let moto = local_aws::Moto::start().await?;
//! let template = local_aws::Template::load_project()?;
//! let table = moto.create_table(&template.table("OrdersTable")?, "orders-test").await?;
//! # Ok(()) }
//! ```

pub mod fixtures;
mod moto;
mod process;
pub mod schemathesis;
pub mod streams;
pub mod tap;
pub mod template;

pub use moto::{BusFaultState, DynamoDbUsage, Moto, PutEventsFault};
pub use process::LocalStripe;
pub use streams::StreamReader;
pub use tap::EventTap;
pub use template::{FunctionRule, StateMachineSpec, TableSpec, Template, referenced};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the Python with {tool} was not found at {path}. Install the dev tools with `make setup` \
         (creates .venv from requirements-dev.txt), or point MOTO_PYTHON at a Python that has them"
    )]
    PythonMissing { path: PathBuf, tool: &'static str },
    #[error("{0} did not start: {1}")]
    Start(&'static str, String),
    #[error("template: {0}")]
    Template(String),
    #[error("AWS call failed: {0}")]
    Aws(String),
}

impl Error {
    pub(crate) fn aws<E: std::error::Error>(err: E) -> Self {
        Self::Aws(format!("{}", DisplayChain(&err)))
    }
}

/// Displays an error with its sources, as the SDK errors hide the useful part in them.
struct DisplayChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// The workspace root (where `template.yaml` lives).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root exists")
}

/// A name unique to this process and call, for resources that tests create side by side.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::now_v7().simple().to_string()[20..])
}
