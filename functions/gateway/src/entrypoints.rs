//! Wiring for the gateway's Lambda binary, which the local host runs too ([`FUNCTIONS`]).

use std::sync::Arc;

use aws_config::SdkConfig;
use shared::config::{Lookup, required};
use shared::function::{BoxError, Function};

/// The gateway's one function, by the binary the template names.
pub const FUNCTIONS: &[Function] = shared::functions!["gateway-api" => api];

/// The public API on API Gateway (HTTP API, payload v2): the services' internal APIs behind it
/// (`<SERVICE>_BASE_URL`, each call signed with the function's role: they require AWS_IAM), the
/// fulfilment saga's progress (`STATE_MACHINE_ARN`), and the legacy route table
/// (`LEGACY_BASE_URL`, `LEGACY_ROUTES`).
pub async fn api(sdk: &SdkConfig, env: Lookup<'_>) -> Result<axum::Router, BoxError> {
    let signer = shared::resilience::SigV4::execute_api(sdk).ok_or("no AWS credentials or region to sign with")?;
    let saga =
        crate::saga::StepFunctionsProgress::new(aws_sdk_sfn::Config::new(sdk), required(env, "STATE_MACHINE_ARN")?);
    let upstreams = crate::upstream::Upstreams::from_lookup(env, Some(signer))?.with_saga(Arc::new(saga));
    let legacy = crate::legacy::Legacy::from_lookup(env)?;
    Ok(crate::http::router(upstreams, legacy))
}
