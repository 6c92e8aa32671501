//! The integration tests of `payment-provider-sim`, one binary (one link) with a module per subject:
//! `cargo nextest run -p payment-provider-sim <module>::` runs one subject.

mod schemathesis;
mod simulator;
