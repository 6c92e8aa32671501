pub mod dynamodb;
pub mod memory;
pub mod stripe;
