//! Code every service shares: the domain-event envelope and its publisher, tracing setup,
//! RFC 9457 problem responses and the small HTTP plumbing around them, and configuration helpers.
//!
//! Nothing here knows about a particular service's domain.

pub mod config;
pub mod correlation;
pub mod dynamo;
pub mod envelope;
pub mod function;
pub mod http;
pub mod metrics;
pub mod money;
pub mod observability;
pub mod outbox;
pub mod problem;
pub mod publisher;
pub mod resilience;
pub mod saga;
pub mod validation;

pub use correlation::CorrelationId;
pub use envelope::DomainEvent;
pub use problem::{ApiError, InvalidParam};
pub use publisher::{EventEntry, EventPublisher, PublishError};
