//! The payments service: one payment per order, charged at most once through a Stripe-compatible
//! provider, refunded exactly once.
//!
//! - [`domain`]: the payment and its states. No I/O.
//! - [`ports`] and [`adapters`]: DynamoDB and in-memory stores, the Stripe HTTP provider and a
//!   scripted one for unit tests.
//! - [`service`]: `charge` and `refund`; [`saga`]: the worker that runs them for the saga;
//!   [`http`]: the read API; [`entrypoints`].

pub mod adapters;
pub mod domain;
pub mod entrypoints;
pub mod events;
pub mod http;
pub mod ports;
pub mod saga;
pub mod service;
