//! Code every service shares: the domain-event envelope and its publisher, tracing setup,
//! RFC 9457 problem responses and the small HTTP plumbing around them, and configuration helpers.
//!
//! Nothing here knows about a particular service's domain.

pub mod config;
pub mod dynamo;
pub mod function;
pub mod http;
pub mod metrics;
pub mod observability;
pub mod outbox;
pub mod problem;
pub mod publisher;
pub mod resilience;
pub mod saga;

pub use problem::ApiError;
pub use publisher::{EventPublisher, PublishError};
