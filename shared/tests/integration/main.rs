//! The integration tests of `shared`, one binary (one link) with a module per subject:
//! `cargo nextest run -p shared <module>::` runs one subject.

mod breaker_state_dynamodb;
mod circuit_breaker;
mod eventbridge_publisher;
mod layers;
mod retry_and_policy;
mod saga;
mod service_client;
