//! The layers above `shared-core` that every service shares. Nothing here knows about a
//! particular service's domain, and no service's domain uses it (that is `shared-core`'s job).
//!
//! - [`aws`]: the event publisher, the transactional outbox and its relay, the saga protocol,
//!   DynamoDB transactions;
//! - [`http`]: problem+json errors, the strict JSON extractor, the correlation middleware;
//! - [`resilience`]: circuit breaker, retry, bulkhead, timeouts and the service client built on them;
//! - the Lambda runner ([`function`]: the build-function tables and the one `main`), with its
//!   environment and SDK configuration ([`config`]), tracing setup ([`observability`]) and
//!   business metrics in CloudWatch EMF ([`metrics`]).

pub mod aws;
pub mod config;
pub mod function;
pub mod http;
pub mod metrics;
pub mod observability;
pub mod resilience;

pub use aws::publisher::{EventPublisher, PublishError};
pub use http::problem::ApiError;
