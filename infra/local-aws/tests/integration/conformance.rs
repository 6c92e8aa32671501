//! Conformance of our local AWS (moto through `infra/local-aws/moto_server.py`, with the fixes in
//! `moto_fixes.py`) to the AWS behaviour the shop relies on. Each check cites the AWS
//! documentation page it comes from.
//!
//! `LOCAL_AWS_UNPATCHED=1 cargo nextest run -p local-aws conformance::` runs the same checks
//! against plain moto (the launcher then applies no fix), to measure what moto gets wrong.

mod support;

mod dynamodb;
mod eventbridge;
mod sqs_secrets;
mod stepfunctions;
mod streams;
