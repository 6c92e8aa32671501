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

/// The AWS SDK configuration of a function in Lambda, from the process environment: see
/// [`lambda_sdk_config`]. Async for the callers written against `aws_config::load_defaults`.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    lambda_sdk_config(&process_env)
}

/// The SDK's HTTPS client (the one `aws-config` would pick: hyper 1.x, rustls with aws-lc and the
/// platform's root certificates), built on the first request, once per [`lambda_sdk_config`] and
/// shared by every client made from it. The SDK's default builds its connector, which reads and
/// parses the root certificates, in each client's constructor ("so that native certs load at
/// client initialization time"): cold-start time for a function that may never call AWS before
/// its first event, paid again for each client.
#[derive(Debug, Default)]
struct FirstUseHttpClient(std::sync::OnceLock<aws_smithy_runtime_api::client::http::SharedHttpClient>);

impl aws_smithy_runtime_api::client::http::HttpClient for FirstUseHttpClient {
    fn http_connector(
        &self,
        settings: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
        components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
    ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        let client = self.0.get_or_init(|| {
            aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::AwsLc)).build_https()
        });
        client.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        Some(aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata::new(
            "hyper",
            Some(std::borrow::Cow::Borrowed("1.x")),
        ))
    }
}

/// The AWS SDK configuration Lambda gives a function, read from `env` without probing anything:
/// the region from `AWS_REGION` (else `AWS_DEFAULT_REGION`), the execution role's credentials
/// from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, which Lambda sets
/// in every function's environment
/// (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime>),
/// and `AWS_ENDPOINT_URL` when set (a local emulator such as moto; `sam local`).
///
/// `aws_config::load_defaults` finds the same values, but on the way it reads the shared
/// config and credentials files and builds the whole default chain (SSO, web identity, ECS,
/// IMDS) for a process whose answer is always in its environment: cold-start time for nothing
/// (`make bench-coldstart`). The HTTPS client is built on the first request
/// ([`FirstUseHttpClient`]), not in each client's constructor. The credentials are read from the process environment when a
/// request is signed, as the SDK's own environment provider does. Per-service endpoint variables
/// (`AWS_ENDPOINT_URL_DYNAMODB`...) and profile settings are not read.
pub fn lambda_sdk_config(env: Lookup<'_>) -> aws_config::SdkConfig {
    use aws_config::environment::EnvironmentVariableCredentialsProvider;
    use aws_credential_types::provider::SharedCredentialsProvider;
    let present = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let mut builder = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .retry_config(aws_config::retry::RetryConfig::standard())
        .identity_cache(aws_config::identity::IdentityCache::lazy().build())
        .credentials_provider(SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()))
        .http_client(FirstUseHttpClient::default());
    if let Some(region) = present("AWS_REGION").or_else(|| present("AWS_DEFAULT_REGION")) {
        builder = builder.region(aws_config::Region::new(region.trim().to_owned()));
    }
    if let Some(endpoint) = present("AWS_ENDPOINT_URL") {
        builder = builder.endpoint_url(endpoint.trim());
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> aws_config::SdkConfig {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        lambda_sdk_config(&move |name: &str| vars.get(name).cloned())
    }

    #[test]
    fn lambda_config_comes_from_the_environment_lambda_sets() {
        let sdk = config(&[("AWS_REGION", "eu-west-1"), ("AWS_DEFAULT_REGION", "us-east-1")]);
        assert_eq!(sdk.region().map(|r| r.as_ref().to_owned()).as_deref(), Some("eu-west-1"));
        assert!(sdk.credentials_provider().is_some(), "the execution role's credentials, from the environment");
        assert_eq!(sdk.endpoint_url(), None);
        assert!(sdk.behavior_version().is_some(), "service clients refuse a config without one");

        let sdk = config(&[("AWS_DEFAULT_REGION", "us-east-2"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")]);
        assert_eq!(sdk.region().map(|r| r.as_ref().to_owned()).as_deref(), Some("us-east-2"));
        assert_eq!(sdk.endpoint_url(), Some("http://127.0.0.1:5000"));

        let sdk = config(&[("AWS_REGION", " "), ("AWS_ENDPOINT_URL", "")]);
        assert!(sdk.region().is_none(), "a blank region is no region");
        assert_eq!(sdk.endpoint_url(), None, "an empty AWS_ENDPOINT_URL is not an endpoint");
    }

    #[tokio::test]
    async fn a_client_from_the_lambda_config_calls_aws_with_the_environments_credentials() {
        let moto = local_aws::Moto::start().await.unwrap();
        // Lambda puts the role's credentials in the environment; nextest runs each test in a
        // process of its own.
        unsafe {
            std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        }
        let sdk = config(&[("AWS_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", moto.endpoint())]);
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        // Twice: the second call goes through the HTTP client the first one built.
        for _ in 0..2 {
            dynamodb.list_tables().send().await.expect("moto answers a signed request");
        }
    }
}
