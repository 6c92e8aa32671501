#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    shared::observability::init_tracing()?;
    let env = &shared::config::process_env;
    let upstreams = gateway::upstream::Upstreams::from_lookup(env)?;
    let legacy = gateway::legacy::Legacy::from_lookup(env)?;
    lambda_http::run(gateway::http::router(upstreams, legacy)).await
}
