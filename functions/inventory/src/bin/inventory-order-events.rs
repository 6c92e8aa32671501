#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    inventory::entrypoints::run_order_events().await
}
