//! The integration tests of `local-host`, one binary (one link) with a module per subject:
//! `cargo nextest run -p local-host <module>::` runs one subject.

mod bus_faults;
mod chaos;
mod contracts;
mod end_to_end;
mod metrics;
mod process;
mod saga;
mod schemathesis;
mod state_machine;
