//! The chaos run's moving parts: the catalogue, the clients, the provider's changing faults, the
//! host's kill and restart, and the watcher that times each order from POST to final state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use payment_provider_sim::{Faults, Simulator};
use serde_json::{Value, json};

use super::client::Api;
use super::process::HostProcess;
use crate::Error;

/// Sku -> (unit price in minor units, stock at the start).
pub type Catalogue = BTreeMap<String, (u64, u64)>;

/// Plentiful skus, and two scarce ones that run out during the run.
pub async fn stock_catalogue(api: &Api, orders: usize) -> Result<Catalogue, Error> {
    let plenty = (orders as u64) * 2;
    let catalogue: Catalogue = [
        ("SKU-MUG", (1250, plenty)),
        ("SKU-TEA", (899, plenty)),
        ("SKU-POT", (4500, plenty)),
        ("SKU-CUP", (300, plenty)),
        ("SKU-RARE-1", (9900, 15)),
        ("SKU-RARE-2", (15000, 8)),
    ]
    .into_iter()
    .map(|(sku, v)| (sku.to_owned(), v))
    .collect();
    for (sku, (price, units)) in &catalogue {
        let product =
            json!({"name": sku, "price": {"amount_minor": price, "currency": "EUR"}, "low_stock_threshold": 5});
        let put = api.send(reqwest::Method::PUT, &format!("/inventory/{sku}"), Some(&product), None).await;
        let restock = json!({"restock_id": "initial", "quantity": units});
        let post = api.send(reqwest::Method::POST, &format!("/inventory/{sku}/restock"), Some(&restock), None).await;
        if put.status != 200 || post.status != 200 {
            return Err(Error::Setup(format!(
                "stocking {sku}: {} {} / {} {}",
                put.status, put.body, post.status, post.body
            )));
        }
    }
    Ok(catalogue)
}

/// What the clients share.
pub struct Run {
    api: Api,
    pub catalogue: Catalogue,
    total: usize,
    next: AtomicUsize,
    placed: AtomicUsize,
    /// Orders seen in their final state by the [`Watcher`].
    settled: AtomicUsize,
    max_in_flight: usize,
    /// Order id -> when its POST was answered 201.
    orders: Mutex<BTreeMap<String, Instant>>,
    keys: Mutex<BTreeMap<String, BTreeSet<String>>>,
    restocked: Mutex<BTreeMap<String, u64>>,
    violations: Mutex<Vec<String>>,
}

impl Run {
    pub fn new(api: Api, catalogue: Catalogue, total: usize, max_in_flight: usize) -> Arc<Self> {
        Arc::new(Self {
            api,
            catalogue,
            total,
            next: AtomicUsize::new(0),
            placed: AtomicUsize::new(0),
            settled: AtomicUsize::new(0),
            max_in_flight: max_in_flight.max(1),
            orders: Mutex::default(),
            keys: Mutex::default(),
            restocked: Mutex::default(),
            violations: Mutex::default(),
        })
    }

    pub fn order_ids(&self) -> Vec<String> {
        self.orders.lock().unwrap().keys().cloned().collect()
    }

    pub fn keys(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.keys.lock().unwrap().clone()
    }

    pub fn restocked(&self, sku: &str) -> u64 {
        self.restocked.lock().unwrap().get(sku).copied().unwrap_or(0)
    }

    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }

    fn violation(&self, text: String) {
        self.violations.lock().unwrap().push(text);
    }

    fn placed(&self) -> usize {
        self.placed.load(Ordering::Relaxed)
    }

    /// One client: takes the next order number until all are placed, each once fewer than
    /// `max_in_flight` orders are waiting to settle (or a minute has passed).
    pub async fn client(self: &Arc<Self>) {
        loop {
            let waited = Instant::now();
            while self.placed().saturating_sub(self.settled.load(Ordering::Relaxed)) >= self.max_in_flight
                && waited.elapsed() < Duration::from_secs(60)
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            if n >= self.total {
                return;
            }
            self.place(n).await;
            self.placed.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn body(&self, n: usize, extra: u32) -> Value {
        let skus: Vec<&String> = self.catalogue.keys().collect();
        let mut items = vec![json!({"sku": skus[n % skus.len()], "quantity": 1 + (n % 3) as u32 + extra})];
        if n % 4 == 1 {
            // Another sku: one line per sku.
            items.push(json!({"sku": skus[(n + 1 + n / 4 % (skus.len() - 1)) % skus.len()], "quantity": 1}));
        }
        let payment_method = match n % 10 {
            0 => "pm_card_visa_chargeDeclined",
            5 => "pm_card_visa_chargeDeclinedInsufficientFunds",
            _ => "pm_card_visa",
        };
        json!({"customer_id": format!("cust-{}", n % 37), "payment_method": payment_method, "items": items})
    }

    async fn place(&self, n: usize) {
        let key = format!("chaos-{n}");
        let body = self.body(n, 0);
        let post = || self.api.send(reqwest::Method::POST, "/api/orders", Some(&body), Some(&key));
        // Every 20th order: the same request twice at once, as a client that timed out and retried.
        let answers = if n % 20 == 3 { vec![post(), post()] } else { vec![post()] };
        for answer in futures::future::join_all(answers).await {
            match (answer.status, answer.body["order"]["id"].as_str().or(answer.body["id"].as_str())) {
                (201, Some(id)) => {
                    self.orders.lock().unwrap().entry(id.to_owned()).or_insert_with(Instant::now);
                    self.keys.lock().unwrap().entry(key.clone()).or_default().insert(id.to_owned());
                }
                (status, _) => self.violation(format!("order #{n} ({key}): POST answered {status} {}", answer.body)),
            }
        }
        if n % 25 == 5 {
            let other = self.body(n, 1);
            let reuse = self.api.send(reqwest::Method::POST, "/api/orders", Some(&other), Some(&key)).await;
            if reuse.status != 422 {
                self.violation(format!(
                    "order #{n}: the key reused with another body answered {} {}",
                    reuse.status, reuse.body
                ));
            }
        }
        if n % 50 == 7 {
            let sku = self.catalogue.keys().nth(n % self.catalogue.len()).cloned().unwrap_or_default();
            let restock = json!({"restock_id": format!("chaos-r-{n}"), "quantity": 5});
            let path = format!("/inventory/{sku}/restock");
            // The restock id makes the POST safe to retry: the client retries it like a keyed one.
            let (a, b) = tokio::join!(self.api.retried_post(&path, &restock), self.api.retried_post(&path, &restock));
            if a.status == 200 && b.status == 200 {
                *self.restocked.lock().unwrap().entry(sku).or_default() += 5;
            } else {
                self.violation(format!("restock chaos-r-{n} twice: {} {} / {} {}", a.status, a.body, b.status, b.body));
            }
        }
    }
}

/// Goes through the provider's fault phases once, one every ten seconds while the clients place
/// orders; the last phase (healthy) stays.
pub async fn cycle_faults(simulator: &Simulator, phases: Vec<(&'static str, Faults)>, run: &Arc<Run>) {
    let phase_length = Duration::from_secs(10);
    for (name, faults) in &phases {
        if run.placed() >= run.total {
            break;
        }
        tracing::info!(phase = name, "provider faults");
        let _ = simulator.set_faults(faults.clone());
        let until = Instant::now() + phase_length;
        while Instant::now() < until && run.placed() < run.total {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let _ = simulator.set_faults(Faults::default());
}

/// SIGKILLs the host once `at` orders are placed and starts it again; returns the restarts.
pub async fn kill_once(host: &mut HostProcess, at: Option<usize>, run: &Arc<Run>) -> u32 {
    let Some(at) = at else { return 0 };
    while run.placed() < at {
        if run.placed() >= run.total {
            return 0;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match tokio::task::block_in_place(|| host.kill_and_restart()) {
        Ok(()) => 1,
        Err(e) => {
            run.violation(format!("the host did not come back after a SIGKILL: {e}"));
            0
        }
    }
}

/// One minute of the run, by when orders reached their final state.
#[derive(Debug, Clone, Default)]
pub struct Minute {
    pub minute: u64,
    pub settled: usize,
    pub p50_ms: u64,
    pub p95_ms: u64,
    pub p99_ms: u64,
    pub emulator_rss_mib: u64,
}

/// Reads the orders table for the orders still pending, to time each one to its final state.
pub struct Watcher {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    emulator_pid: Option<u32>,
    started: Instant,
    /// Order id -> (settled at, latency).
    settled: Mutex<BTreeMap<String, (Duration, Duration)>>,
    /// (at, RSS in MiB) samples.
    memory: Mutex<Vec<(Duration, u64)>>,
    progress_said: Mutex<u64>,
}

impl Watcher {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table: String, emulator_pid: Option<u32>) -> Self {
        Self {
            dynamodb,
            table,
            emulator_pid,
            started: Instant::now(),
            settled: Mutex::default(),
            memory: Mutex::default(),
            progress_said: Mutex::new(0),
        }
    }

    /// Until the clients are done.
    pub async fn watch(&self, run: &Arc<Run>) {
        while run.placed() < run.total {
            self.sweep(run).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Until every order left PENDING, or `timeout`.
    pub async fn wait_settled(&self, run: &Arc<Run>, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.sweep(run).await > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Checks the pending orders once; returns how many are still pending. Says how far the
    /// run is every ten seconds.
    async fn sweep(&self, run: &Arc<Run>) -> usize {
        let still = self.sweep_once(run).await;
        run.settled.store(self.settled.lock().unwrap().len(), Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs();
        let mut said = self.progress_said.lock().unwrap();
        if elapsed >= *said + 10 {
            *said = elapsed;
            let rss = self.memory.lock().unwrap().last().map_or(0, |m| m.1);
            eprintln!(
                "chaos {elapsed:>4}s: {}/{} placed, {} settled, {still} pending, emulator {rss} MiB",
                run.placed(),
                run.total,
                self.settled.lock().unwrap().len()
            );
        }
        still
    }

    async fn sweep_once(&self, run: &Arc<Run>) -> usize {
        if let Some(rss) = self.emulator_pid.and_then(rss_mib) {
            self.memory.lock().unwrap().push((self.started.elapsed(), rss));
        }
        let placed: Vec<(String, Instant)> = run.orders.lock().unwrap().iter().map(|(k, v)| (k.clone(), *v)).collect();
        let pending: Vec<(String, Instant)> = {
            let settled = self.settled.lock().unwrap();
            placed.into_iter().filter(|(id, _)| !settled.contains_key(id)).collect()
        };
        let mut still = 0;
        for chunk in pending.chunks(100) {
            let mut keys =
                KeysAndAttributes::builder().projection_expression("pk, #s").expression_attribute_names("#s", "status");
            for (id, _) in chunk {
                keys = keys.keys(
                    [
                        ("pk".to_owned(), AttributeValue::S(format!("ORDER#{id}"))),
                        ("sk".to_owned(), AttributeValue::S("ORDER".into())),
                    ]
                    .into(),
                );
            }
            let Ok(keys) = keys.build() else { continue };
            let Ok(output) = self.dynamodb.batch_get_item().request_items(&self.table, keys).send().await else {
                still += chunk.len();
                continue;
            };
            let mut finals = BTreeSet::new();
            for item in output.responses().and_then(|r| r.get(&self.table)).into_iter().flatten() {
                let status = item.get("status").and_then(|v| v.as_s().ok()).map(String::as_str);
                if matches!(status, Some("CONFIRMED" | "CANCELLED")) {
                    let id =
                        item.get("pk").and_then(|v| v.as_s().ok()).map(|pk| pk.trim_start_matches("ORDER#").to_owned());
                    finals.extend(id);
                }
            }
            let now = self.started.elapsed();
            let mut settled = self.settled.lock().unwrap();
            for (id, placed_at) in chunk {
                if finals.contains(id) {
                    settled.insert(id.clone(), (now, placed_at.elapsed()));
                } else {
                    still += 1;
                }
            }
        }
        still
    }

    /// When the last order settled, from the start of placing.
    pub fn last_settled(&self) -> Duration {
        self.settled.lock().unwrap().values().map(|(at, _)| *at).max().unwrap_or_default()
    }

    pub fn minutes(&self) -> Vec<Minute> {
        let settled = self.settled.lock().unwrap();
        let memory = self.memory.lock().unwrap();
        let last = settled.values().map(|(at, _)| at.as_secs() / 60).max().unwrap_or(0);
        (0..=last)
            .map(|minute| {
                let mut latencies: Vec<u64> = settled
                    .values()
                    .filter(|(at, _)| at.as_secs() / 60 == minute)
                    .map(|(_, l)| l.as_millis() as u64)
                    .collect();
                latencies.sort_unstable();
                let pct = |p: f64| {
                    latencies
                        .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
                        .copied()
                        .unwrap_or(0)
                };
                let rss =
                    memory.iter().filter(|(at, _)| at.as_secs() / 60 == minute).map(|(_, r)| *r).max().unwrap_or(0);
                Minute {
                    minute,
                    settled: latencies.len(),
                    p50_ms: pct(0.50),
                    p95_ms: pct(0.95),
                    p99_ms: pct(0.99),
                    emulator_rss_mib: rss,
                }
            })
            .collect()
    }
}

/// The resident memory of the emulator: its process and the processes it started (the launcher
/// runs DynamoDB in a second one).
fn rss_mib(pid: u32) -> Option<u64> {
    let own = |pid: &str| -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok()
    };
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let kib = own(&pid.to_string())? + children.split_whitespace().filter_map(own).sum::<u64>();
    Some(kib / 1024)
}
