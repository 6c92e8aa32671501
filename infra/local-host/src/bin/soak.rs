//! `make soak`: the chaos run at length (10,000 orders by default, `SOAK_ORDERS` to change),
//! reporting orders settled per minute, latency from POST to final state per minute (p50, p95,
//! p99) and the emulator's memory; exits 1 on any violated invariant. The emulator keeps stream
//! records 5 minutes (`SOAK_STREAM_RETENTION_SECONDS`), not 24 hours. Needs the `local-host`
//! binary beside this one (`cargo build --release -p local-host --bins`).

use std::time::Duration;

use local_host::chaos::{ChaosConfig, run};

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let orders = std::env::var("SOAK_ORDERS").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    // Stream records kept 5 minutes, not AWS's 24 hours (SOAK_STREAM_RETENTION_SECONDS): the host
    // reads them within seconds, and a day of them would make the emulator's memory grow with
    // the run's length, which is what the run measures.
    let retention = std::env::var("SOAK_STREAM_RETENTION_SECONDS").ok().and_then(|n| n.parse().ok()).unwrap_or(300);
    let host_binary = std::env::current_exe().expect("own path").with_file_name("local-host");
    let config = ChaosConfig {
        host_binary,
        orders,
        clients: 8,
        kill_at: Some(0.5),
        settle_timeout: Duration::from_secs(600),
        max_in_flight: local_host::chaos::in_flight(),
        stream_retention: Some(Duration::from_secs(retention)),
    };
    let report = match run(config).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(1);
        }
    };
    println!("{}", report.table());
    let per_minute = |d: std::time::Duration| report.orders as f64 / (d.as_secs_f64() / 60.0).max(1e-9);
    println!(
        "throughput: {:.0} orders settled per minute from the first placed to the last settled ({:.0?}); \
         {:.0} over the whole run with setup and the final checks",
        per_minute(report.settling),
        report.settling,
        per_minute(report.wall)
    );
    for v in report.violations.iter().take(100) {
        println!("VIOLATION {v}");
    }
    std::process::exit(if report.violations.is_empty() { 0 } else { 1 });
}
