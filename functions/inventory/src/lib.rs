//! The inventory service: the catalogue (price and stock per sku) and all-or-nothing
//! reservations of stock for orders, which never oversell.
//!
//! - [`domain`]: products, reservations and their rules. No I/O.
//! - [`ports`] and [`adapters`] (DynamoDB, in-memory); [`service`]: the use cases
//!   (`reserve`, `release`, `commit`, catalogue admin) that the HTTP API and the saga worker call.
//! - [`http`]: the axum router; [`relay`]: outbox and `StockLow` publishing; [`saga`]: the saga
//!   worker; [`order_events`]: the consumer of order outcomes; [`entrypoints`].

pub mod adapters;
pub mod domain;
pub mod entrypoints;
pub mod events;
pub mod http;
pub mod order_events;
pub mod ports;
pub mod relay;
pub mod saga;
pub mod service;
