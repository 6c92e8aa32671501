//! Nothing to ship: see `benches/resilience.rs`.
