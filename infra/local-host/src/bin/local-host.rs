//! `make local`: the whole shop on 127.0.0.1, provisioned from template.yaml. Ctrl-C (or
//! SIGTERM) stops it and everything it started.
//!
//! Options: `--port N` (HTTP APIs, default 3000). `AWS_ENDPOINT_URL` set: use that moto instead
//! of starting one (start it with `MOTO_PORT` set to its port).

use local_host::{Host, HostConfig};

fn usage() -> ! {
    eprintln!("usage: local-host [--port 3000]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_target(false)
        .init();
    let mut config = HostConfig { log_invocations: true, ..HostConfig::default() };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => config.http_port = args.next().and_then(|p| p.parse().ok()).unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    config.moto_endpoint = std::env::var("AWS_ENDPOINT_URL").ok().filter(|v| !v.is_empty());
    println!("starting the local system (moto, payment provider simulator, every function of template.yaml)...");
    let host = match Host::start(config).await {
        Ok(host) => host,
        Err(e) => {
            eprintln!("local-host: {e}");
            std::process::exit(1);
        }
    };
    println!("HTTP APIs   {}", host.base_url());
    for (method, path, binary) in &host.routes {
        println!("  {method:<6} {path:<36} -> {binary}");
    }
    println!("public API  {}/api/openapi.json (OpenAPI 3.1)", host.base_url());
    println!("moto        {}", host.moto.endpoint());
    println!("provider    {} (simulator; faults: PUT /_sim/faults)", host.simulator.base_url());
    println!("ready. One line per invocation below; Ctrl-C stops everything.");
    // Ctrl-C, or a SIGTERM from whoever started us: either way stop what we started.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap_or_else(|e| {
        eprintln!("local-host: cannot watch SIGTERM: {e}");
        std::process::exit(1)
    });
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    println!("stopping...");
    drop(host);
}
