//! The services behind the gateway, one resilient client each.

use std::time::Duration;

use shared::config::Lookup;
use shared::resilience::{CallError, HttpError, ServiceClient, ServiceClientConfig, SigV4};

/// The three internal APIs, and where each order's saga is.
#[derive(Clone)]
pub struct Upstreams {
    pub orders: ServiceClient,
    pub inventory: ServiceClient,
    pub payments: ServiceClient,
    pub saga: Option<std::sync::Arc<dyn crate::saga::SagaProgress>>,
    /// Which claim names the caller's groups and which group is admin (see [`crate::caller`]).
    pub access: crate::caller::Access,
}

/// The gateway's environment names a downstream it cannot call.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamsError {
    #[error(transparent)]
    Env(#[from] shared::config::ConfigError),
    #[error(transparent)]
    Resilience(#[from] shared::resilience::InvalidSetting),
}

impl Upstreams {
    /// From `ORDERS_BASE_URL`, `INVENTORY_BASE_URL`, `PAYMENTS_BASE_URL` and their policy
    /// variables (see `shared::resilience::client`), and `GROUPS_CLAIM` and `ADMIN_GROUP`. With a signer, every call is signed with
    /// SigV4 (the internal APIs require IAM authorization).
    pub fn from_lookup(env: Lookup<'_>, signer: Option<SigV4>) -> Result<Self, UpstreamsError> {
        let client = |prefix: &str| -> Result<ServiceClient, UpstreamsError> {
            let client = ServiceClient::new(&ServiceClientConfig::from_lookup(prefix, env)?)?;
            Ok(match &signer {
                Some(signer) => client.signed(signer.clone()),
                None => client,
            })
        };
        Ok(Self {
            orders: client("ORDERS")?,
            inventory: client("INVENTORY")?,
            payments: client("PAYMENTS")?,
            saga: None,
            access: crate::caller::Access::from_lookup(env),
        })
    }

    /// Also shows each order's saga progress.
    pub fn with_saga(mut self, saga: std::sync::Arc<dyn crate::saga::SagaProgress>) -> Self {
        self.saga = Some(saga);
        self
    }
}

/// How a downstream call failed, as the gateway answers it.
#[derive(Debug)]
pub enum Failure {
    /// The service answered 4xx: its answer is the client's answer.
    Answered { status: http::StatusCode, body: Vec<u8> },
    /// Down, slow or protected by its breaker: try again after this long.
    Unavailable { retry_after: Duration, reason: String },
}

impl From<CallError<HttpError>> for Failure {
    fn from(err: CallError<HttpError>) -> Self {
        match err {
            CallError::Inner(HttpError::Status { status, body, .. }) if status.is_client_error() => {
                Failure::Answered { status, body: body.to_vec() }
            }
            CallError::CircuitOpen { remaining, .. } => Failure::Unavailable {
                retry_after: remaining.max(Duration::from_secs(1)),
                reason: "circuit open".into(),
            },
            other => Failure::Unavailable { retry_after: Duration::from_secs(1), reason: other.to_string() },
        }
    }
}
