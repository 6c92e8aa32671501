//! A long and rude run of the whole local system: many orders from concurrent clients over
//! several skus (some scarce), paying and declining cards, while the payment provider's faults
//! change (500s, timeouts, latency, a full outage, recovery); duplicate requests, a reused
//! idempotency key with another body, restocks sent twice; the host SIGKILLed and restarted in the
//! middle. Then, once everything has settled, the invariants of [`check`] over what the public
//! API, the provider, Step Functions, the tables and the bus say.
//!
//! The chaos test runs it with 1,000 orders; `make soak` with 10,000, reporting throughput,
//! latency from POST to final state and the emulator's memory per minute.

mod check;
mod client;
mod process;
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use local_aws::{EventTap, Moto};
use payment_provider_sim::{Faults, Simulator, SimulatorConfig};

pub use check::Observed;
use client::Api;
use process::HostProcess;
pub use workload::Minute;

use crate::{Error, physical_name, sdk_setup, setup};

const STACK: &str = "chaos";
const API_KEY: &str = "sk_test_chaos";

#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// The `local-host` binary.
    pub host_binary: PathBuf,
    pub orders: usize,
    pub clients: usize,
    /// Kill the host (SIGKILL) and restart it once this share of the orders is placed.
    pub kill_at: Option<f64>,
    /// How long orders may take to settle after the last one is placed.
    pub settle_timeout: Duration,
    /// At most this many orders placed and not yet settled: a client waits before placing the
    /// next (up to a minute, then places it anyway). Unbounded, clients that place faster than
    /// one emulator process settles build a backlog whose commands wait in their queues past
    /// the saga's task timeouts, are sent again, and the run feeds on itself (measured: 3,000
    /// orders placed in 199 s, then 80 settled a minute). Real arrivals do not outrun the shop.
    pub max_in_flight: usize,
    /// How long the emulator keeps stream records (AWS: 24 hours, the default): a long run
    /// shortens it so that its memory measures what grows with the shop, not a day of records
    /// its consumers read within seconds.
    pub stream_retention: Option<Duration>,
}

/// The bound on orders in flight: `CHAOS_IN_FLIGHT`, 200 by default (about a minute of what one
/// emulator process settles on 2 cores, well inside the saga's task timeouts).
pub fn in_flight() -> usize {
    std::env::var("CHAOS_IN_FLIGHT").ok().and_then(|n| n.parse().ok()).unwrap_or(200)
}

#[derive(Debug, Default)]
pub struct Report {
    pub orders: usize,
    pub by_status: BTreeMap<String, usize>,
    pub violations: Vec<String>,
    pub minutes: Vec<Minute>,
    pub placing: Duration,
    pub wall: Duration,
    /// From the first order placed to the last settled: the run's throughput is orders over
    /// this (the wall time adds setup and the final checks).
    pub settling: Duration,
    pub restarts: u32,
    /// Compensation retries the sweeper started, and for how many orders.
    pub compensation_retries: usize,
    pub retried_orders: usize,
    /// What the emulator held at the end (`Moto::holdings`), when it could say.
    pub holdings: Option<serde_json::Value>,
}

impl Report {
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} orders {:?} in {:.0?} (placing {:.0?}), host restarts {}, compensation retries {} of {} orders, \
             violations {}\n",
            self.orders,
            self.by_status,
            self.wall,
            self.placing,
            self.restarts,
            self.compensation_retries,
            self.retried_orders,
            self.violations.len()
        );
        out.push_str("minute  settled  p50 ms  p95 ms  p99 ms  emulator RSS MiB\n");
        for m in &self.minutes {
            out.push_str(&format!(
                "{:>6}  {:>7}  {:>6}  {:>6}  {:>6}  {:>8}\n",
                m.minute, m.settled, m.p50_ms, m.p95_ms, m.p99_ms, m.emulator_rss_mib
            ));
        }
        if let Some(held) = &self.holdings {
            out.push_str(&format!("the emulator held at the end: {held}\n"));
        }
        out
    }
}

/// The provider's fault schedule: each lasts a phase, then the next; the run ends healthy.
/// The outage lasts longer than the provider breaker's open time (30 s), as the issue asks.
fn fault_phases() -> Vec<(&'static str, Faults)> {
    vec![
        ("healthy", Faults::default()),
        ("500s", Faults { failure_rate: 0.3, ..Faults::default() }),
        // 500s Stripe saves under the key and replays (after the charge, for some).
        ("saved 500s", Faults { error_rate: 0.1, error_after_effect_rate: 0.1, ..Faults::default() }),
        ("timeouts", Faults { timeout_rate: 0.15, hang_ms: 1500, ..Faults::default() }),
        ("latency", Faults { latency_ms: 150, ..Faults::default() }),
        ("outage", Faults { down: true, ..Faults::default() }),
        ("outage", Faults { down: true, ..Faults::default() }),
        ("outage", Faults { down: true, ..Faults::default() }),
        ("outage", Faults { down: true, ..Faults::default() }),
        ("healthy", Faults::default()),
    ]
}

/// The local host's command line for a chaos run: the stack, a hundredth of AWS's waits, the
/// simulator as the provider, and the timeouts that suit an emulator at its capacity.
fn host_args(port: u16, state_dir: &std::path::Path, simulator_url: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--stack",
        STACK,
        "--time-scale",
        "0.01",
        "--provider-api-key",
        API_KEY,
        "--parameter",
        &format!("PaymentProviderBaseUrl={simulator_url}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--state-dir".into(), state_dir.display().to_string()]);
    // A command that waits in its worker's queue longer than the task timeout is sent again by
    // the saga's Retry, and the stale one is still handled: on an emulator at its capacity that
    // feeds itself (measured: an inventory worker 3,800 commands behind, 470 of 1,000 orders
    // settled after 10 minutes). The checks are about correctness, not the emulator's capacity:
    // the steps wait longer here than the template's 30 s and 75 s.
    for parameter in ["SagaTaskTimeoutSeconds=120", "SagaPaymentTimeoutSeconds=180"] {
        args.extend(["--parameter".into(), parameter.into()]);
    }
    // Parked orders retried at the host's time scale (15 minutes doubling to a day, x 0.01, capped
    // at a minute so that the run settles): the sweeper finishes them before the checks.
    for (name, value) in [("COMPENSATION_RETRY_FIRST_SECONDS", "9"), ("COMPENSATION_RETRY_MAX_SECONDS", "60")] {
        args.extend(["--env".into(), format!("{name}={value}")]);
    }
    // moto serialises DynamoDB: under this load a call can take seconds that DynamoDB would not.
    for service in ["ORDERS", "INVENTORY", "PAYMENTS"] {
        args.extend(["--env".into(), format!("{service}_ATTEMPT_TIMEOUT_MS=10000")]);
        args.extend(["--env".into(), format!("{service}_TIMEOUT_MS=25000")]);
    }
    args
}

pub async fn run(config: ChaosConfig) -> Result<Report, Error> {
    let started = Instant::now();
    let moto = Moto::start().await?;
    if let Some(retention) = config.stream_retention {
        moto.set_stream_retention(retention).await?;
    }
    let simulator =
        Simulator::new(SimulatorConfig { api_key: API_KEY.into(), seed: Some(7), ..SimulatorConfig::default() })
            .map_err(setup("simulator"))?
            .spawn(0)
            .await
            .map_err(setup("simulator"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(setup("port"))?.port();
    let state_dir = std::env::temp_dir().join(local_aws::unique_name("chaos-state"));
    let args = host_args(port, &state_dir, &simulator.base_url());
    let mut host = HostProcess::start(&config.host_binary, moto.endpoint(), args)?;
    let api = Api::new(format!("http://127.0.0.1:{port}"));
    let bus = physical_name(STACK, "ShopEventBus");
    let pattern = serde_json::json!({"source": ["shop.orders", "shop.inventory", "shop.payments"]});
    let tap = Arc::new(EventTap::create(&moto, &bus, &physical_name(STACK, "chaos-bus-tap"), &pattern).await?);
    // Read as they come: a queue thousands of messages long makes every send to it slower in moto.
    let bus_events = Arc::new(Mutex::new(Vec::new()));
    let collector = tokio::spawn(collect(tap.clone(), bus_events.clone()));
    let catalogue = workload::stock_catalogue(&api, config.orders).await?;

    let placing = Instant::now();
    let sdk = moto.sdk_config();
    let run = workload::Run::new(api.clone(), catalogue.clone(), config.orders, config.max_in_flight);
    let watcher =
        workload::Watcher::new(aws_sdk_dynamodb::Client::new(&sdk), physical_name(STACK, "OrdersTable"), moto.pid());
    let (placed, restarts) = {
        let clients = futures::future::join_all((0..config.clients).map(|_| run.client()));
        let faults = workload::cycle_faults(&simulator.simulator, fault_phases(), &run);
        let kill =
            workload::kill_once(&mut host, config.kill_at.map(|share| (share * config.orders as f64) as usize), &run);
        let watch = watcher.watch(&run);
        let (_, _, restarts, _) = tokio::join!(clients, faults, kill, watch);
        (placing.elapsed(), restarts)
    };
    simulator.simulator.set_faults(Faults::default()).map_err(Error::Setup)?;
    watcher.wait_settled(&run, config.settle_timeout).await;
    let sfn = aws_sdk_sfn::Client::new(&sdk);
    wait_no_running(&sfn, config.settle_timeout).await?;

    // What is asynchronous after the last state (OrderConfirmed -> commit) may still be on its way.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (observed, violations) = loop {
        let mut observed = observe(&api, &run, &simulator.simulator, &sdk, &sfn).await?;
        let more = drain(&tap).await?;
        bus_events.lock().unwrap().extend(more);
        observed.bus = bus_events.lock().unwrap().clone();
        let violations = check::violations(&observed);
        if violations.is_empty() || Instant::now() > deadline {
            break (observed, violations);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    collector.abort();
    let holdings = moto.holdings().await.ok();
    host.stop();
    let _ = std::fs::remove_dir_all(&state_dir);
    let mut violations = violations;
    violations.extend(run.violations());
    let mut report = Report::of(&observed, violations, watcher.minutes(), placed, started.elapsed(), restarts);
    report.holdings = holdings;
    report.settling = watcher.last_settled();
    Ok(report)
}

impl Report {
    fn of(
        observed: &Observed,
        violations: Vec<String>,
        minutes: Vec<Minute>,
        placing: Duration,
        wall: Duration,
        restarts: u32,
    ) -> Self {
        let mut by_status = BTreeMap::new();
        for view in observed.views.values() {
            *by_status.entry(view["order"]["status"].as_str().unwrap_or("?").to_owned()).or_insert(0) += 1;
        }
        let retried: BTreeSet<&str> = observed.compensations.iter().filter_map(|(name, _)| name.get(..36)).collect();
        Report {
            compensation_retries: observed.compensations.len(),
            retried_orders: retried.len(),
            orders: observed.views.len(),
            by_status,
            violations,
            minutes,
            placing,
            wall,
            restarts,
            holdings: None,
            settling: Duration::ZERO,
        }
    }
}

/// Keeps reading the tap into `events`.
async fn collect(tap: Arc<EventTap>, events: Arc<Mutex<Vec<(String, String)>>>) {
    loop {
        match tap.poll_waiting(1).await {
            Ok(batch) => events.lock().unwrap().extend(batch.iter().map(event_key)),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

fn event_key(event: &serde_json::Value) -> (String, String) {
    let id = event["detail"]["event_id"].as_str().unwrap_or_default().to_owned();
    (id, event["detail-type"].as_str().unwrap_or_default().to_owned())
}

/// Every domain event the tap has received so far.
async fn drain(tap: &EventTap) -> Result<Vec<(String, String)>, Error> {
    let mut events = Vec::new();
    loop {
        let batch = tap.poll().await?;
        if batch.is_empty() {
            return Ok(events);
        }
        events.extend(batch.iter().map(event_key));
    }
}

async fn executions(sfn: &aws_sdk_sfn::Client) -> Result<Vec<(String, String)>, Error> {
    executions_of(sfn, "FulfilmentStateMachine").await
}

/// The executions of the template's state machine `logical_id`, with their status.
async fn executions_of(sfn: &aws_sdk_sfn::Client, logical_id: &str) -> Result<Vec<(String, String)>, Error> {
    let machines = sfn.list_state_machines().send().await.map_err(setup("ListStateMachines"))?;
    let name = physical_name(STACK, logical_id);
    let Some(machine) = machines.state_machines().iter().find(|m| m.name() == name) else {
        return Err(Error::Setup(format!("no state machine {name}")));
    };
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = sfn
            .list_executions()
            .state_machine_arn(machine.state_machine_arn())
            .set_next_token(token)
            .send()
            .await
            .map_err(setup("ListExecutions"))?;
        out.extend(page.executions().iter().map(|e| (e.name().to_owned(), e.status().as_str().to_owned())));
        token = page.next_token;
        if token.is_none() {
            return Ok(out);
        }
    }
}

async fn wait_no_running(sfn: &aws_sdk_sfn::Client, timeout: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    let running = |executions: &[(String, String)]| executions.iter().any(|(_, s)| s == "RUNNING");
    while (running(&executions(sfn).await?) || running(&executions_of(sfn, "CompensationStateMachine").await?))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

async fn observe(
    api: &Api,
    run: &workload::Run,
    simulator: &Simulator,
    sdk: &aws_config::SdkConfig,
    sfn: &aws_sdk_sfn::Client,
) -> Result<Observed, Error> {
    let ids: Vec<String> = run.order_ids();
    let mut views = BTreeMap::new();
    for chunk in ids.chunks(8) {
        let paths: Vec<String> = chunk.iter().map(|id| format!("/api/orders/{id}")).collect();
        let answers = futures::future::join_all(paths.iter().map(|path| api.get(path))).await;
        for (id, answer) in chunk.iter().zip(answers) {
            views.insert(id.clone(), answer.body);
        }
    }
    // A degraded view is a read that timed out (the services are still busy with the run's
    // tail), not a state: read it again a few times; one still degraded is reported.
    let degraded = |view: &serde_json::Value| !view["degraded"].as_array().is_none_or(Vec::is_empty);
    for _ in 0..10 {
        let again: Vec<String> = views.iter().filter(|(_, v)| degraded(v)).map(|(id, _)| id.clone()).collect();
        if again.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        for id in again {
            views.insert(id.clone(), api.get(&format!("/api/orders/{id}")).await.body);
        }
    }
    let mut provider = BTreeMap::new();
    for (id, view) in &views {
        let mut money = (0, 0);
        if let Some(intent) =
            view["payment"]["provider_payment_id"].as_str().and_then(|pi| simulator.payment_intent(pi))
        {
            money.0 += intent["amount_received"].as_u64().unwrap_or(0);
            money.1 += simulator.refunded(intent["id"].as_str().unwrap_or_default());
        }
        provider.insert(id.clone(), money);
    }
    let mut stock = BTreeMap::new();
    for (sku, (price, initial)) in &run.catalogue {
        let product = api.get(&format!("/api/products/{sku}")).await;
        let available = product.body["available"].as_u64().unwrap_or(u64::MAX);
        stock.insert(sku.clone(), (*price, *initial, run.restocked(sku), available));
    }
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let mut outbox = BTreeMap::new();
    for table in ["OrdersTable", "InventoryTable", "PaymentsTable"] {
        outbox.extend(outbox_records(&dynamodb, &physical_name(STACK, table)).await?);
    }
    Ok(Observed {
        views,
        stock,
        provider,
        executions: executions(sfn).await?,
        compensations: executions_of(sfn, "CompensationStateMachine").await?,
        parked: parked_orders(&dynamodb, &physical_name(STACK, "OrdersTable")).await?,
        outbox,
        bus: Vec::new(),
        keys: run.keys(),
    })
}

/// Orders still `COMPENSATION_PENDING`, read from the orders table (the public API's contract
/// does not know the status), with why they are parked.
async fn parked_orders(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<BTreeMap<String, serde_json::Value>, Error> {
    let mut parked = BTreeMap::new();
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .filter_expression("#s = :parked")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":parked", AttributeValue::S("COMPENSATION_PENDING".into()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(sdk_setup(&format!("Scan {table}")))?;
        for item in page.items() {
            let order: serde_json::Value = serde_dynamo::from_item(item.clone()).map_err(setup("parked order"))?;
            parked.insert(order["id"].as_str().unwrap_or_default().to_owned(), order["parking"].clone());
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(parked);
        }
    }
}

/// `event_id` -> `<detail-type> of <pk> in <table>` of every outbox record of `table`.
async fn outbox_records(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> Result<Vec<(String, String)>, Error> {
    let mut ids = Vec::new();
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .filter_expression("entity = :outbox")
            .expression_attribute_values(":outbox", AttributeValue::S("OUTBOX".into()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(sdk_setup(&format!("Scan {table}")))?;
        for item in page.items() {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            if let Some(AttributeValue::S(id)) = item.get("event_id") {
                ids.push((id.clone(), format!("{} of {} in {table}", text("detail_type"), text("pk"))));
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(ids);
        }
    }
}
