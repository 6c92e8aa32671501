//! Configuration from the environment, checked at cold start with errors that name the variable.

use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {name} is not set (or not valid UTF-8)")]
    Missing { name: String },
    #[error("environment variable {name} has an invalid value `{value}`: {reason}")]
    Invalid { name: String, value: String, reason: String },
}

/// Where a function reads its configuration: the process environment in Lambda, the function's
/// resolved `Environment` from the template in the local host.
pub type Lookup<'a> = &'a (dyn Fn(&str) -> Option<String> + Send + Sync);

/// The process environment as a [`Lookup`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A variable that must be present and non-empty.
pub fn required(lookup: Lookup<'_>, name: &str) -> Result<String, ConfigError> {
    match lookup(name) {
        Some(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing { name: name.to_owned() }),
    }
}

/// An optional variable parsed as `T`, with a default when it is absent.
pub fn parsed_or<T>(lookup: Lookup<'_>, name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match lookup(name) {
        Some(value) if !value.trim().is_empty() => value.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
            name: name.to_owned(),
            value,
            reason: e.to_string(),
        }),
        _ => Ok(default),
    }
}

/// [`required`] from the process environment.
pub fn required_env(name: &str) -> Result<String, ConfigError> {
    required(&process_env, name)
}

/// [`parsed_or`] from the process environment.
pub fn env_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    parsed_or(&process_env, name, default)
}

/// The AWS SDK configuration from the usual chain. `AWS_ENDPOINT_URL` (honoured by the SDK)
/// points every client at a local endpoint such as moto.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
