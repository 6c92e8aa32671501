//! Adapters of the inventory ports.

pub mod dynamodb;
pub mod memory;
