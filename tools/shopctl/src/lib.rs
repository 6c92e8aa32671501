//! `shopctl`, the operator's tool for a deployed shop and for the local system alike: what sits
//! in each dead-letter queue, decoded and grouped ([`dlq`]); redriving it ([`redrive`]);
//! replaying the event archive without the saga's commands ([`replay`]). Resources are found
//! from the stack ([`stack`]); every call is the same SDK call on AWS and locally, against the
//! endpoint the environment names.

pub mod cli;
pub mod dlq;
pub mod redrive;
pub mod replay;
pub mod stack;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Stack(String),
    #[error("{0}")]
    Letter(String),
    #[error("publishing to the bus failed: {0}")]
    Publish(String),
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// An SDK error of `operation`, with its whole cause chain.
    pub fn aws<E: std::error::Error + Send + Sync + 'static, R: std::fmt::Debug + Send + Sync + 'static>(
        operation: &'static str,
    ) -> impl FnOnce(aws_smithy_runtime_api::client::result::SdkError<E, R>) -> Error {
        move |e| Error::Stack(format!("{operation}: {}", aws_smithy_types::error::display::DisplayErrorContext(e)))
    }
}
