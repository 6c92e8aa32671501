//! The integration tests of `inventory`, one binary (one link) with a module per subject:
//! `cargo nextest run -p inventory <module>::` runs one subject.

mod domain;
mod dynamodb_store;
mod http_api;
mod relay;
mod saga;
mod service;
