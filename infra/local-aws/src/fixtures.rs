//! The test events under `events/<binary>/`, loaded as the payloads Lambda hands each function,
//! so every test that runs a fixture through a handler reads it the same way.

use std::path::PathBuf;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Error, project_root};

/// `events/<binary>/<name>`.
pub fn path(binary: &str, name: &str) -> PathBuf {
    project_root().join("events").join(binary).join(name)
}

/// The fixture as text.
pub fn text(binary: &str, name: &str) -> Result<String, Error> {
    let path = path(binary, name);
    std::fs::read_to_string(&path).map_err(|e| Error::Template(format!("reading {}: {e}", path.display())))
}

/// The fixture parsed as `T` (a Lambda event type).
pub fn load<T: DeserializeOwned>(binary: &str, name: &str) -> Result<T, Error> {
    serde_json::from_str(&text(binary, name)?)
        .map_err(|e| Error::Template(format!("events/{binary}/{name} is not the expected event: {e}")))
}

/// An EventBridge event (what a rule delivers to a function).
pub fn eventbridge(binary: &str, name: &str) -> Result<EventBridgeEvent<Value>, Error> {
    load(binary, name)
}
