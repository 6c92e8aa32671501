//! `make local`: the whole shop on 127.0.0.1, provisioned from template.yaml. Ctrl-C (or
//! SIGTERM) stops it.
//!
//! State is kept between runs: the emulator it starts keeps running after it stops (its address
//! and process id in `<state dir>/moto.json`), and the next run finds the stack's tables, queues
//! and executions there and resumes each stream after its saved checkpoint. `--reset` stops that
//! emulator and starts from nothing; `--stop` only stops it.
//!
//! Options: `--port N` (HTTP APIs, default 3000), `--stack NAME` (default `local`), `--state-dir
//! DIR` (default `.local`), `--time-scale F` (AWS's retry waits times F, default 1),
//! `--parameter Name=Value` (a template parameter, repeatable), `--env NAME=VALUE` (added to
//! every function's environment, repeatable), `--provider-api-key KEY` (with
//! `--parameter PaymentProviderBaseUrl=...`, for a provider that runs elsewhere), `--reset`,
//! `--stop`. `AWS_ENDPOINT_URL` set: use that emulator (start it with `MOTO_PORT` set to its port).

use std::path::{Path, PathBuf};

use local_aws::Moto;
use local_host::{Host, HostConfig, TimeScale};

fn usage() -> ! {
    eprintln!(
        "usage: local-host [--port 3000] [--stack local] [--state-dir .local] [--time-scale 1] \
         [--parameter Name=Value]... [--env NAME=VALUE]... [--provider-api-key KEY] [--reset | --stop]"
    );
    std::process::exit(2)
}

struct Options {
    config: HostConfig,
    reset: bool,
    stop: bool,
}

fn options() -> Options {
    let mut config = HostConfig {
        log_invocations: true,
        stack: Some("local".into()),
        state_dir: Some(PathBuf::from(".local")),
        time_scale: TimeScale(1.0),
        ..HostConfig::default()
    };
    let (mut reset, mut stop) = (false, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--port" => config.http_port = value().parse().unwrap_or_else(|_| usage()),
            "--stack" => config.stack = Some(value()),
            "--state-dir" => config.state_dir = Some(PathBuf::from(value())),
            "--time-scale" => config.time_scale = TimeScale(value().parse().unwrap_or_else(|_| usage())),
            "--provider-api-key" => config.provider_api_key = Some(value()),
            "--parameter" => {
                let pair = value();
                let (name, v) = pair.split_once('=').unwrap_or_else(|| usage());
                config.parameters.insert(name.to_owned(), v.to_owned());
            }
            "--env" => {
                let pair = value();
                let (name, v) = pair.split_once('=').unwrap_or_else(|| usage());
                config.env_overrides.insert(name.to_owned(), v.to_owned());
            }
            "--reset" => reset = true,
            "--stop" => stop = true,
            _ => usage(),
        }
    }
    Options { config, reset, stop }
}

/// The emulator this state directory's runs share, as `moto.json` records it.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedMoto {
    endpoint: String,
    pid: u32,
    log: PathBuf,
}

fn saved_moto(state_dir: &Path) -> Option<SavedMoto> {
    serde_json::from_str(&std::fs::read_to_string(state_dir.join("moto.json")).ok()?).ok()
}

/// Stops the saved emulator and forgets the stack's checkpoints.
fn forget(state_dir: &Path, stack: &str) {
    if let Some(saved) = saved_moto(state_dir) {
        // SAFETY-free: kill(1) by pid; a pid that is gone is not an error worth stopping for.
        let _ = std::process::Command::new("kill").arg(saved.pid.to_string()).status();
        println!("stopped the emulator at {} (pid {})", saved.endpoint, saved.pid);
    }
    let _ = std::fs::remove_file(state_dir.join("moto.json"));
    let _ = std::fs::remove_file(state_dir.join(format!("{stack}-checkpoints.json")));
}

/// The emulator to use: `AWS_ENDPOINT_URL`, the one a previous run left, or a new one left
/// running for the next run.
async fn emulator(state_dir: &Path) -> Result<String, String> {
    if let Some(endpoint) = std::env::var("AWS_ENDPOINT_URL").ok().filter(|v| !v.is_empty()) {
        return Ok(endpoint);
    }
    if let Some(saved) = saved_moto(state_dir)
        && Moto::is_running(&saved.endpoint).await
    {
        println!("using the emulator a previous run left at {} (pid {})", saved.endpoint, saved.pid);
        return Ok(saved.endpoint);
    }
    let (moto, pid, log) = Moto::start_detached().await.map_err(|e| e.to_string())?;
    let saved = SavedMoto { endpoint: moto.endpoint().to_owned(), pid, log };
    std::fs::create_dir_all(state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
    let text = serde_json::to_string_pretty(&saved).unwrap_or_default();
    std::fs::write(state_dir.join("moto.json"), text).map_err(|e| format!("{}: {e}", state_dir.display()))?;
    println!(
        "started an emulator at {} (pid {}, log {}); it keeps the shop's state between runs",
        saved.endpoint,
        pid,
        saved.log.display()
    );
    Ok(saved.endpoint)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_target(false)
        .init();
    let Options { mut config, reset, stop } = options();
    let state_dir = config.state_dir.clone().unwrap_or_else(|| PathBuf::from(".local"));
    let stack = config.stack.clone().unwrap_or_default();
    if reset || stop {
        forget(&state_dir, &stack);
        if stop {
            return;
        }
    }
    let endpoint = emulator(&state_dir).await.unwrap_or_else(|e| {
        eprintln!("local-host: {e}");
        std::process::exit(1)
    });
    config.moto_endpoint = Some(endpoint);
    println!("starting the local system (payment provider simulator, every function of template.yaml)...");
    let host = match Host::start(config).await {
        Ok(host) => host,
        Err(e) => {
            eprintln!("local-host: {e}");
            std::process::exit(1);
        }
    };
    let provisioned = host.provisioned;
    if provisioned.found > 0 {
        println!(
            "stack '{}': resumed ({} resources found, {} created; {} stream checkpoints). --reset starts from nothing",
            host.stack(),
            provisioned.found,
            provisioned.created,
            host.resumed_checkpoints
        );
    } else {
        println!("stack '{}': provisioned fresh ({} resources)", host.stack(), provisioned.created);
    }
    println!("HTTP APIs   {}", host.base_url());
    for (method, path, binary) in &host.routes {
        println!("  {method:<6} {path:<36} -> {binary}");
    }
    println!("public API  {}/api/openapi.json (OpenAPI 3.1)", host.base_url());
    println!(
        "tokens      POST {}/_local/token {{\"sub\":\"c1\",\"groups\":[\"admin\"]}} (or `make token`); \
         internal APIs need SigV4 with the local credentials",
        host.base_url()
    );
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
    println!("stopping... (the emulator keeps the state; --reset or --stop ends it)");
    drop(host);
}
