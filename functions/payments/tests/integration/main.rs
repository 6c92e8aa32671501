//! The integration tests of `payments`, one binary (one link) with a module per subject:
//! `cargo nextest run -p payments <module>::` runs one subject.

mod domain;
mod dynamodb_store;
mod http_api;
mod localstripe;
mod outbox_relay;
mod saga;
mod service;
mod stripe_provider;
