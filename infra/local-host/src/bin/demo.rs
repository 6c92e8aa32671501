//! `make demo`: the local system, a catalogue, a happy order, an order out of stock, a declined
//! payment, a provider outage during a burst; timelines, outcomes and cost per order. Exits 1 if
//! an order ends in a state its scenario did not expect.

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error".into()))
        .with_target(false)
        .init();
    match local_host::demo::run().await {
        Ok(true) => println!("\nEvery order ended as its scenario expected."),
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("demo: {e}");
            std::process::exit(1);
        }
    }
}
