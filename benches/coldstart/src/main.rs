//! `make bench-coldstart`: how long each function of the template takes to start, against a
//! hello-world `lambda_runtime` binary built in the same release build.
//!
//! The local host ([`local_host::Host`]) provisions a fresh moto from `template.yaml` (tables,
//! bus, queues, the provider secret, the state machine), serves the HTTP APIs and runs the
//! payment provider simulator, and resolves every function's `Environment` exactly as it does for
//! `make local`. Then each release binary is launched as Lambda would launch it: a fresh process
//! with Lambda's reserved variables (region, credentials, `AWS_LAMBDA_RUNTIME_API` pointing at a
//! fake Runtime API on 127.0.0.1, [`runtime_api`]) plus the template's variables, with
//! `AWS_ENDPOINT_URL` pointing at the moto. Every round launches every function once, so noise
//! from the rest of the machine falls on every function alike.
//!
//! Round 0 is untimed (it seeds what the API fixtures read); then `COLDSTART_RUNS` rounds, each
//! in a new (seeded) random order, with a pause after each launch for what it set off to finish.
//!
//! Per launch: **init** is process start (just before `spawn`) to its first `GET
//! /runtime/invocation/next`; **first** is the first event (its `events/<binary>/` fixture)
//! handed over to its answer; **warm** is the same event again on the same process.
//!
//! Variables: `COLDSTART_RUNS` (launches per function, default 30), `COLDSTART_BIN_DIR` (default
//! `target/release`), `COLDSTART_ONLY` (comma-separated binaries), `COLDSTART_MAX_RATIO` (default
//! 1.5: the run fails when a function's median init exceeds this many times hello world's).

mod runtime_api;
mod stats;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use local_host::{Delivery, Host, HostConfig};
use runtime_api::{Call, RuntimeApi};
use stats::{median, ms, percentile};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const HELLO: &str = "hello-lambda";
/// How long a launch may take to reach `GET /next`, or an invocation to answer.
const PATIENCE: Duration = Duration::from_secs(30);
/// The fixture each function is invoked with (else the first of its `events/<binary>/`).
/// The APIs get a write, or a read of what another fixture writes (`get-payment.json` reads the
/// payment `process-payment.json` makes in the untimed first round), so every answer is a success
/// on a fresh emulator rather than a 404.
const FIXTURES: [(&str, &str); 8] = [
    ("orders-saga-worker", "confirm-order.json"),
    ("inventory-saga-worker", "reserve-inventory.json"),
    ("inventory-order-events", "order-confirmed.json"),
    ("payments-saga-worker", "process-payment.json"),
    ("orders-api", "place-order.json"),
    ("inventory-api", "put-product.json"),
    ("payments-api", "get-payment.json"),
    ("gateway-api", "place-order.json"),
];
/// After each launch, time for what its invocations set off (the emulator writing, the host
/// routing events) to finish, so it does not fall on the next launch.
const SETTLE: Duration = Duration::from_millis(100);

struct Function {
    name: String,
    binary: String,
    env: BTreeMap<String, String>,
    event: Bytes,
}

#[derive(Default)]
struct Samples {
    init: Vec<Duration>,
    first: Vec<Duration>,
    warm: Vec<Duration>,
    outcomes: BTreeSet<String>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, BoxError> {
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => {
            raw.trim().parse().map_err(|_| format!("{name}: cannot parse `{raw}`").into())
        }
        _ => Ok(default),
    }
}

fn fixture(root: &Path, binary: &str) -> Result<Bytes, BoxError> {
    let dir = root.join("events").join(binary);
    let named = FIXTURES.iter().find(|(b, _)| *b == binary).map(|(_, f)| dir.join(f));
    let path = match named {
        Some(path) => path,
        None => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            files.into_iter().next().ok_or_else(|| format!("no fixture in {}", dir.display()))?
        }
    };
    Ok(std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?.into())
}

/// What Lambda itself sets in every function's environment
/// (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime>),
/// with the local credentials (no session token: the local API Gateway checks it) and the
/// emulator's endpoint.
fn lambda_env(name: &str, runtime_api: &str, moto: &str, task_root: &Path) -> BTreeMap<String, String> {
    [
        ("_HANDLER", "bootstrap".to_owned()),
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/01/01/[$LATEST]coldstart".to_owned()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_ENDPOINT_URL", moto.to_owned()),
        ("LAMBDA_TASK_ROOT", task_root.display().to_string()),
        ("LANG", "en_US.UTF-8".to_owned()),
        ("TZ", ":UTC".to_owned()),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn outcome(call: &Call) -> String {
    let field = |body: &Bytes, name: &str| {
        serde_json::from_slice::<serde_json::Value>(body).ok().and_then(|v| v.get(name).cloned())
    };
    match call {
        Call::Response { body, .. } => match field(body, "statusCode") {
            Some(code) => format!("HTTP {code}"),
            None => "ok".into(),
        },
        Call::Error { body, .. } => {
            format!(
                "error {}",
                field(body, "errorType").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
            )
        }
        other => format!("{other:?}"),
    }
}

/// Waits for the launched process's next `GET /next`, failing if it exits or reports an init error.
async fn wait_next(api: &mut RuntimeApi, child: &mut tokio::process::Child, what: &str) -> Result<Instant, BoxError> {
    loop {
        tokio::select! {
            call = api.call(PATIENCE) => match call {
                Some(Call::Next(at)) => return Ok(at),
                Some(Call::InitError { body, .. }) => {
                    return Err(format!("{what}: init error {}", String::from_utf8_lossy(&body)).into());
                }
                Some(_) => continue,
                None => return Err(format!("{what}: no GET /next within {PATIENCE:?}").into()),
            },
            status = child.wait() => return Err(format!("{what}: exited ({status:?}) before GET /next").into()),
        }
    }
}

async fn wait_answer(api: &mut RuntimeApi, request_id: &str) -> Result<(Instant, String), BoxError> {
    loop {
        match api.call(PATIENCE).await {
            Some(call @ (Call::Response { .. } | Call::Error { .. })) => {
                let (Call::Response { at, request_id: id, .. } | Call::Error { at, request_id: id, .. }) = &call else {
                    unreachable!()
                };
                if id == request_id {
                    return Ok((*at, outcome(&call)));
                }
            }
            Some(_) => continue,
            None => return Err(format!("{request_id}: no answer within {PATIENCE:?}").into()),
        }
    }
}

async fn launch(
    api: &mut RuntimeApi,
    path: &Path,
    function: &Function,
    base_env: &BTreeMap<String, String>,
    log: &std::fs::File,
    run: usize,
    samples: &mut Samples,
) -> Result<(), BoxError> {
    api.reset();
    let mut command = tokio::process::Command::new(path);
    command
        .env_clear()
        .envs(base_env)
        .envs(&function.env)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?)
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = command.spawn().map_err(|e| format!("{}: {e}", path.display()))?;
    let result = async {
        let ready = wait_next(api, &mut child, &function.binary).await?;
        samples.init.push(ready - started);
        for (i, series) in [&mut samples.first, &mut samples.warm].into_iter().enumerate() {
            if i > 0 {
                wait_next(api, &mut child, &function.binary).await?;
            }
            let request_id = format!("{}-{run}-{}", function.binary, i + 1);
            let handed = api.invoke(&request_id, function.event.clone());
            let (answered, outcome) = wait_answer(api, &request_id).await?;
            series.push(answered - handed);
            samples.outcomes.insert(outcome);
        }
        Ok::<_, BoxError>(())
    }
    .await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    result
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let runs: usize = env_or("COLDSTART_RUNS", 30)?;
    let max_ratio: f64 = env_or("COLDSTART_MAX_RATIO", 1.5)?;
    let root = local_aws::project_root();
    let bin_dir = std::env::var("COLDSTART_BIN_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target/release"));
    let only: Vec<String> = std::env::var("COLDSTART_ONLY")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_owned())
        .collect();
    let log_dir = root.join("target/coldstart");
    std::fs::create_dir_all(&log_dir)?;

    let host = Host::start(HostConfig { http_port: 0, ..HostConfig::default() }).await?;
    // The fixtures' orders and payments must not set off sagas in the background while others
    // are timed: saga commands are dropped.
    host.intercept(|_| Delivery::Drop);
    let mut functions = vec![Function {
        name: HELLO.into(),
        binary: HELLO.into(),
        env: BTreeMap::new(),
        event: Bytes::from_static(b"{\"hello\":\"world\"}"),
    }];
    let mut declared: Vec<_> = host.functions.iter().collect();
    declared.sort_by(|a, b| a.1.binary.cmp(&b.1.binary));
    for (name, info) in declared {
        if !only.is_empty() && !only.contains(&info.binary) {
            continue;
        }
        let event = fixture(&root, &info.binary)?;
        functions.push(Function { name: name.clone(), binary: info.binary.clone(), env: info.env.clone(), event });
    }
    for function in &functions {
        let path = bin_dir.join(&function.binary);
        if !path.is_file() {
            return Err(format!("{} is missing: `make bench-coldstart` builds it", path.display()).into());
        }
    }

    let mut api = RuntimeApi::start().await?;
    let mut samples: BTreeMap<String, Samples> = BTreeMap::new();
    let mut logs = BTreeMap::new();
    for function in &functions {
        let log = std::fs::File::create(log_dir.join(format!("{}.log", function.binary)))?;
        logs.insert(function.binary.clone(), log);
    }
    eprintln!(
        "{} launches of {} binaries from {} (logs in {})",
        runs,
        functions.len(),
        bin_dir.display(),
        log_dir.display()
    );
    // Round 0 is not timed: it seeds what the fixtures read (and warms the page cache). Each
    // round launches the functions in a new order, so no function always follows the same one
    // (whose invocations could still be keeping the emulator busy).
    let mut rng = fastrand::Rng::with_seed(18);
    let mut order: Vec<usize> = (0..functions.len()).collect();
    for run in 0..=runs {
        rng.shuffle(&mut order);
        for &i in &order {
            let function = &functions[i];
            let base_env = lambda_env(&function.name, &api.address, host.moto.endpoint(), &bin_dir);
            let mut untimed = Samples::default();
            let entry = if run == 0 { &mut untimed } else { samples.entry(function.binary.clone()).or_default() };
            launch(&mut api, &bin_dir.join(&function.binary), function, &base_env, &logs[&function.binary], run, entry)
                .await?;
            tokio::time::sleep(SETTLE).await;
        }
        eprint!("\r{run} / {runs}");
    }
    eprintln!();

    let hello = median(&samples[HELLO].init);
    let mut table = String::from(
        "| function | init median ms | init p90 ms | init ratio to hello | first invoke median ms | first p90 ms | warm invoke median ms | warm p90 ms | answers |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    let mut over = Vec::new();
    for function in &functions {
        let s = &samples[&function.binary];
        let ratio = median(&s.init).as_secs_f64() / hello.as_secs_f64();
        if ratio > max_ratio {
            over.push(format!("{} ({ratio:.2}x)", function.binary));
        }
        table.push_str(&format!(
            "| {} | {} | {} | {ratio:.2} | {} | {} | {} | {} | {} |\n",
            function.binary,
            ms(median(&s.init)),
            ms(percentile(&s.init, 90.0)),
            ms(median(&s.first)),
            ms(percentile(&s.first, 90.0)),
            ms(median(&s.warm)),
            ms(percentile(&s.warm, 90.0)),
            s.outcomes.iter().cloned().collect::<Vec<_>>().join(", "),
        ));
    }
    println!("{table}");
    std::fs::write(log_dir.join("table.md"), &table)?;
    if !over.is_empty() {
        return Err(format!("median init above {max_ratio}x hello world: {}", over.join(", ")).into());
    }
    Ok(())
}
