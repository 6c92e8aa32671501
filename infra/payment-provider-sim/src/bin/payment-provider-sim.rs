//! `payment-provider-sim [--port 12111] [--api-key KEY] [--failure-rate R] [--error-rate R]
//! [--timeout-rate R] [--latency-ms MS] [--hang-ms MS] [--seed N]`: the Stripe-like simulator on
//! 127.0.0.1. `--failure-rate`: 500s before processing (not saved under the idempotency key);
//! `--error-rate`: 500s once execution began (saved and replayed, as Stripe does).

use payment_provider_sim::{Faults, Simulator, SimulatorConfig};

const USAGE: &str = "usage: payment-provider-sim [--port 12111] [--api-key KEY] [--failure-rate 0..1] \
                     [--error-rate 0..1] [--timeout-rate 0..1] [--latency-ms MS] [--hang-ms MS] [--seed N]";

fn parse(args: &[String]) -> Result<(u16, SimulatorConfig), String> {
    let mut port = 12111;
    let mut config = SimulatorConfig { faults: Faults::default(), ..SimulatorConfig::default() };
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let value = iter.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--port" => port = value.parse().map_err(|e| bad(&e))?,
            "--api-key" => config.api_key = value.clone(),
            "--failure-rate" => config.faults.failure_rate = value.parse().map_err(|e| bad(&e))?,
            "--error-rate" => config.faults.error_rate = value.parse().map_err(|e| bad(&e))?,
            "--timeout-rate" => config.faults.timeout_rate = value.parse().map_err(|e| bad(&e))?,
            "--latency-ms" => config.faults.latency_ms = value.parse().map_err(|e| bad(&e))?,
            "--hang-ms" => config.faults.hang_ms = value.parse().map_err(|e| bad(&e))?,
            "--seed" => config.seed = Some(value.parse().map_err(|e| bad(&e))?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok((port, config))
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_target(false).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return;
    }
    let (port, config) = parse(&args).unwrap_or_else(|err| {
        eprintln!("payment-provider-sim: {err}\n{USAGE}");
        std::process::exit(2);
    });
    let simulator = Simulator::new(config).unwrap_or_else(|err| {
        eprintln!("payment-provider-sim: {err}");
        std::process::exit(2);
    });
    let running = simulator.spawn(port).await.unwrap_or_else(|err| {
        eprintln!("payment-provider-sim: cannot listen on 127.0.0.1:{port}: {err} (is another simulator running?)");
        std::process::exit(1);
    });
    tracing::info!(url = %running.base_url(), "payment provider simulator listening");
    let _ = tokio::signal::ctrl_c().await;
}
