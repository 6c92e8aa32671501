//! The orders service: places orders and follows them to CONFIRMED or CANCELLED.
//!
//! - [`domain`]: Order, lines and statuses; validation and legal transitions. No I/O.
//! - [`ports`]: the store trait the core needs; [`adapters`]: DynamoDB and in-memory.
//! - [`service`]: the use cases; [`http`]: the axum router. The outbox relay is
//!   `shared::aws::outbox::relay` on this service's table stream.
//! - [`saga`]: the saga starter (one execution per order) and the worker for `ConfirmOrder` and
//!   `CancelOrder`.
//! - [`parking`]: `COMPENSATION_PENDING`, where an order waits when a compensation could not
//!   finish; [`sweeper`]: the scheduled function that retries parked (and abandoned) orders.
//! - [`entrypoints`]: what each Lambda binary runs.

pub mod adapters;
pub mod domain;
pub mod entrypoints;
pub mod events;
pub mod http;
pub mod parking;
pub mod ports;
pub mod saga;
pub mod service;
pub mod sweeper;
