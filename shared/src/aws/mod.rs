//! The AWS layer: what the services do through the AWS SDK. Publishing to the bus
//! ([`publisher`]), the transactional outbox and its relay ([`outbox`]), the saga's protocol and
//! its answers to Step Functions ([`saga`]), and DynamoDB transactions ([`dynamo`]).

pub mod dynamo;
pub mod outbox;
pub mod publisher;
pub mod saga;
