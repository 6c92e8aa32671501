pub mod dynamodb;
pub mod memory;
pub mod provider_key;
pub mod stripe;
