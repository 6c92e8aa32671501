//! The integration tests of `local-aws`, one binary (one link) with a module per subject:
//! `cargo nextest run -p local-aws <module>::` runs one subject.

mod conformance;
mod moto_harness;
mod project_template;
