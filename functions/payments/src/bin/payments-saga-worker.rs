#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    payments::entrypoints::run_saga_worker().await
}
