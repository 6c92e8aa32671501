//! The payment provider's API key as the adapter holds it: read from Secrets Manager on first
//! use (not at cold start: a payments function that never charges never reads it), kept for a
//! time to live, and read again at once when the provider refuses it with 401. So a rotated key
//! works without recycling the instances: the first request with the old key is refused, the
//! secret is read again, the request is sent again with the new key.
//!
//! Concurrent callers share one read: the cache is behind an async mutex held across the read,
//! and a caller that saw an old key refused takes the key another caller already read.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use tokio::sync::Mutex;

use super::stripe::{ApiKey, SecretError};

/// How long a key read from the secret is used before it is read again (default of
/// `PAYMENT_PROVIDER_SECRET_TTL_SECONDS`): rotation needs no refusal to be noticed within this.
pub const DEFAULT_SECRET_TTL: Duration = Duration::from_secs(300);

enum Source {
    Fixed(ApiKey),
    SecretsManager(Box<SecretSource>),
}

struct SecretSource {
    sdk: SdkConfig,
    client: OnceLock<aws_sdk_secretsmanager::Client>,
    secret_id: String,
}

pub struct ProviderKey {
    source: Source,
    ttl: Duration,
    cached: Mutex<Option<(ApiKey, Instant)>>,
}

impl std::fmt::Debug for ProviderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::Fixed(_) => f.write_str("ProviderKey(fixed)"),
            Source::SecretsManager(secret) => {
                write!(f, "ProviderKey(secret {}, ttl {:?})", secret.secret_id, self.ttl)
            }
        }
    }
}

impl From<ApiKey> for ProviderKey {
    fn from(key: ApiKey) -> Self {
        Self::fixed(key)
    }
}

impl ProviderKey {
    /// A key that never changes (tests, a provider started with its own key).
    pub fn fixed(key: ApiKey) -> Self {
        Self { source: Source::Fixed(key), ttl: Duration::MAX, cached: Mutex::new(None) }
    }

    /// The key in a Secrets Manager secret (see [`ApiKey::from_secrets_manager`] for its shape),
    /// read on first use and again after `ttl`. Nothing is sent and no client is built here.
    pub fn secrets_manager(sdk: &SdkConfig, secret_id: impl Into<String>, ttl: Duration) -> Self {
        let secret = SecretSource { sdk: sdk.clone(), client: OnceLock::new(), secret_id: secret_id.into() };
        let source = Source::SecretsManager(Box::new(secret));
        Self { source, ttl, cached: Mutex::new(None) }
    }

    async fn read(&self) -> Result<ApiKey, SecretError> {
        match &self.source {
            Source::Fixed(key) => Ok(key.clone()),
            Source::SecretsManager(secret) => {
                let client = secret.client.get_or_init(|| aws_sdk_secretsmanager::Client::new(&secret.sdk));
                ApiKey::from_secrets_manager(client, &secret.secret_id).await
            }
        }
    }

    /// The key to send: the cached one while it is younger than the TTL, else read now.
    pub async fn current(&self) -> Result<ApiKey, SecretError> {
        let mut cached = self.cached.lock().await;
        if let Some((key, read_at)) = cached.as_ref()
            && read_at.elapsed() < self.ttl
        {
            return Ok(key.clone());
        }
        let key = self.read().await?;
        *cached = Some((key.clone(), Instant::now()));
        Ok(key)
    }

    /// The provider refused `refused`: the key to send again with, read from the secret now
    /// (or already read by another caller that saw the same refusal), or `None` when the secret
    /// still holds the refused key (a wrong key, not a rotation: sending again cannot help).
    pub async fn after_refusal(&self, refused: &ApiKey) -> Result<Option<ApiKey>, SecretError> {
        if matches!(self.source, Source::Fixed(_)) {
            return Ok(None);
        }
        let mut cached = self.cached.lock().await;
        if let Some((key, _)) = cached.as_ref()
            && key != refused
        {
            return Ok(Some(key.clone()));
        }
        let key = self.read().await?;
        *cached = Some((key.clone(), Instant::now()));
        Ok((key != *refused).then_some(key))
    }
}
