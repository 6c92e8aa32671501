//! Configuration from the environment, checked at cold start with errors that name the variable.

use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {name} is not set (or not valid UTF-8)")]
    Missing { name: String },
    #[error("environment variable {name} has an invalid value `{value}`: {reason}")]
    Invalid { name: String, value: String, reason: String },
}

/// A variable that must be present and non-empty.
pub fn required_env(name: &str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing { name: name.to_owned() }),
    }
}

/// An optional variable parsed as `T`, with a default when it is absent.
pub fn env_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
            name: name.to_owned(),
            value,
            reason: e.to_string(),
        }),
        _ => Ok(default),
    }
}

/// The AWS SDK configuration from the usual chain. `AWS_ENDPOINT_URL` (honoured by the SDK)
/// points every client at a local endpoint such as moto.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
