#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    orders::entrypoints::run_sweeper().await
}
