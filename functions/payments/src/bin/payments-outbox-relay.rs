#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    payments::entrypoints::run_outbox_relay().await
}
