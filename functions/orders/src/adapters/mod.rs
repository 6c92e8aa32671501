//! Adapters of the orders ports.

pub mod dynamodb;
pub mod memory;
pub mod stepfunctions;
