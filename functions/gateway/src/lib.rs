//! The public API gateway: one API over the three services' internal APIs.
//!
//! Every route but the catalogue's reads and the OpenAPI document is behind API Gateway's JWT
//! authorizer: the caller is the token's `sub` ([`caller`]), never a field of the body.
//!
//! - `POST /api/orders` forwards to orders with an `Idempotency-Key`: the client's, or one the
//!   gateway makes for that request, so its own retries are replays (orders replays the first
//!   answer for the same key and body, and refuses another body with 422); a 503 names the key.
//! - `GET /api/orders/{id}` parses the id into its one spelling (lower-case hyphenated UUID)
//!   and fetches the order, its payment, its reservation and its saga's progress in parallel; if
//!   payments or inventory fail, time out or have an open breaker, the answer is still 200 with
//!   what it has and `"degraded": ["payment"]`; if orders itself is unavailable, 503 with
//!   `Retry-After`.
//! - `GET /api/orders` lists the caller's own orders, newest first, a page at a time.
//! - `GET /api/orders/{id}` of another customer's order is a 404, as for an order that does not
//!   exist; an admin reads any order.
//! - `GET /api/products/{sku}` forwards to inventory; `PUT /api/products/{sku}` and
//!   `POST /api/products/{sku}/restock` are for admins.
//! - Routes listed in `LEGACY_ROUTES` go to the legacy backend first (strangler fig, see
//!   [`legacy`]).
//!
//! Every downstream has its own `ServiceClient` (timeouts, retry only for idempotent calls,
//! breaker, bulkhead), configured from `ORDERS_*`, `INVENTORY_*` and `PAYMENTS_*` variables.

pub mod api;
pub mod caller;
pub mod entrypoints;
pub mod http;
pub mod legacy;
pub mod saga;
pub mod upstream;
