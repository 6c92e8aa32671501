#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    shared::observability::init_tracing()?;
    let upstreams = gateway::upstream::Upstreams::from_lookup(&shared::config::process_env)?;
    lambda_http::run(gateway::http::router(upstreams)).await
}
