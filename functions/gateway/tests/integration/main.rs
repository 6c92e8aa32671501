//! The integration tests of `gateway`, one binary (one link) with a module per subject:
//! `cargo nextest run -p gateway <module>::` runs one subject.

mod body_limit;
mod edge;
mod gateway;
mod openapi;
