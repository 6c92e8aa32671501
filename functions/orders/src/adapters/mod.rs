//! Adapters of the orders ports.

pub mod compensations;
pub mod dynamodb;
pub mod memory;
pub mod stepfunctions;
