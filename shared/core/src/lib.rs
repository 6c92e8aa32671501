//! The bottom layer of the shared code: what a service's domain may use. No AWS, no HTTP, no
//! Lambda: the domain-event envelope, money, ids, field checks and the error they report,
//! correlation ids and the W3C trace context.
//!
//! The layers above it live in `shared`: the AWS layer (publisher, outbox, saga protocol,
//! DynamoDB helpers), the HTTP layer (problem+json, strict JSON, correlation middleware),
//! resilience, and the Lambda runner. A service's `domain` module depends on this crate alone
//! (`shared/tests/integration/layers.rs` checks it).

pub mod correlation;
pub mod envelope;
pub mod error;
pub mod ids;
pub mod money;
pub mod trace;
pub mod validation;
pub mod write;

pub use correlation::CorrelationId;
pub use envelope::DomainEvent;
pub use error::InvalidParam;
pub use ids::OrderId;
pub use write::Conditional;
