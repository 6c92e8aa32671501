//! The integration tests of `orders`, one binary (one link) with a module per subject:
//! `cargo nextest run -p orders <module>::` runs one subject.

mod support;

mod domain;
mod dynamodb_store;
mod http_api;
mod outbox_relay;
mod parking;
mod saga;
