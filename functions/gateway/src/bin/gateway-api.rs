#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    shared::observability::init_tracing()?;
    let env = &shared::config::process_env;
    let sdk = shared::config::aws_sdk_config().await;
    // The function's role signs every call to the internal APIs (AWS_IAM authorization).
    let signer = shared::resilience::SigV4::execute_api(&sdk).ok_or("no AWS credentials or region to sign with")?;
    let saga = gateway::saga::StepFunctionsProgress::new(
        aws_sdk_sfn::Client::new(&sdk),
        shared::config::required(env, "STATE_MACHINE_ARN")?,
    );
    let upstreams = gateway::upstream::Upstreams::from_lookup(env, Some(signer))?.with_saga(std::sync::Arc::new(saga));
    let legacy = gateway::legacy::Legacy::from_lookup(env)?;
    lambda_http::run(gateway::http::router(upstreams, legacy)).await
}
