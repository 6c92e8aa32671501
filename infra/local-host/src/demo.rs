//! `make demo`: the local system, a catalogue, and the orders a user wants to see go through,
//! each with its timeline, then what each kind of order costs in AWS operations and dollars.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use local_aws::EventTap;
use payment_provider_sim::Faults;
use serde_json::{Value, json};

use crate::{Error, Host, HostConfig, Invocation, Physical};

/// Public list prices, us-east-1, USD (checked 2026-11; verify before quoting).
mod price {
    pub const LAMBDA_PER_REQUEST: f64 = 0.20 / 1e6;
    /// arm64, per GB-second.
    pub const LAMBDA_PER_GB_SECOND: f64 = 0.000_013_333_4;
    pub const LAMBDA_MEMORY_GB: f64 = 0.25;
    pub const HTTP_API_PER_REQUEST: f64 = 1.00 / 1e6;
    pub const STATE_TRANSITION: f64 = 0.025 / 1e3;
    pub const EVENT_PUT: f64 = 1.00 / 1e6;
    pub const DYNAMODB_WRITE_UNIT: f64 = 0.625 / 1e6;
    pub const DYNAMODB_READ_UNIT: f64 = 0.125 / 1e6;
}

struct Planned {
    sku: &'static str,
    quantity: u32,
    payment_method: &'static str,
    expect: (&'static str, Option<&'static str>),
}

/// What one order went through.
struct Report {
    scenario: &'static str,
    order_id: String,
    outcome: String,
    as_expected: bool,
    lambda: usize,
    lambda_ms: u128,
    transitions: usize,
    events: usize,
    read_units: f64,
    write_units: f64,
}

impl Report {
    fn dollars(&self) -> f64 {
        self.lambda as f64 * price::LAMBDA_PER_REQUEST
            + self.lambda_ms as f64 / 1000.0 * price::LAMBDA_MEMORY_GB * price::LAMBDA_PER_GB_SECOND
            + price::HTTP_API_PER_REQUEST
            + self.transitions as f64 * price::STATE_TRANSITION
            + self.events as f64 * price::EVENT_PUT
            + self.write_units * price::DYNAMODB_WRITE_UNIT
            + self.read_units * price::DYNAMODB_READ_UNIT
    }
}

struct Demo {
    host: Host,
    http: reqwest::Client,
    tap: EventTap,
    events: Vec<Value>,
    reports: Vec<Report>,
}

impl Demo {
    /// A call to an internal API, signed with the local credentials (its routes are `AWS_IAM`),
    /// or, with a token, to the public API.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>, correlation: &str) -> (u16, Value) {
        self.call_as(None, method, path, body, correlation).await
    }

    async fn call_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        correlation: &str,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.host.base_url()))
            .header("x-correlation-id", correlation);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let mut request = match request.build() {
            Ok(request) => request,
            Err(e) => return (0, json!({ "error": e.to_string() })),
        };
        if token.is_none() {
            self.host.sign(&mut request);
        }
        match self.http.execute(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            }
            Err(e) => (0, json!({ "error": e.to_string() })),
        }
    }

    /// Stocks the catalogue through the public API, as an admin would on AWS.
    async fn seed(&self) -> Result<(), Error> {
        println!("\n== catalogue (stocked through the public API with an admin's token: POST /_local/token)");
        let admin = self.host.token("demo-admin", &["admin"]);
        let admin = Some(admin.as_str());
        for (sku, name, price, stock) in
            [("SKU-MUG", "Mug", 1250, 100), ("SKU-TEE", "T-shirt", 1900, 20), ("SKU-LAMP", "Lamp", 4900, 0)]
        {
            let spec =
                json!({"name": name, "price": {"amount_minor": price, "currency": "EUR"}, "low_stock_threshold": 2});
            let put = (reqwest::Method::PUT, format!("/api/products/{sku}"));
            let (status, _) = self.call_as(admin, put.0, &put.1, Some(spec), "demo-seed").await;
            let restock = json!({"restock_id": "demo-initial", "quantity": stock});
            let (restocked, _) = if stock > 0 {
                let path = format!("/api/products/{sku}/restock");
                self.call_as(admin, reqwest::Method::POST, &path, Some(restock), "demo-seed").await
            } else {
                (200, Value::Null)
            };
            if status != 200 || restocked != 200 {
                return Err(Error::Setup(format!("seeding {sku} failed: HTTP {status}/{restocked}")));
            }
            println!("  {sku:<9} {name:<8} {:>6.2} EUR  stock {stock}", f64::from(price) / 100.0);
        }
        Ok(())
    }

    /// Places the orders at once, waits for their sagas, and reports each.
    async fn scenario(&mut self, name: &'static str, orders: &[Planned]) -> Result<(), Error> {
        let before = self.host.moto.dynamodb_usage().await?;
        let mut placed = Vec::new();
        let this = &*self;
        // Placed through the public API by the customer whose token it is.
        let customer = self.host.token("demo-customer", &[]);
        let customer = customer.as_str();
        let posts = orders.iter().enumerate().map(|(i, plan)| {
            let correlation = format!("demo-{}-{i}-{}", name.replace(' ', "-"), &uuid_suffix());
            let body = json!({"payment_method": plan.payment_method,
                              "items": [{"sku": plan.sku, "quantity": plan.quantity}]});
            async move {
                let post = (reqwest::Method::POST, "/api/orders");
                let (status, order) = this.call_as(Some(customer), post.0, post.1, Some(body), &correlation).await;
                (status, order, correlation)
            }
        });
        for (plan, (status, order, correlation)) in orders.iter().zip(futures::future::join_all(posts).await) {
            let id = order["id"]
                .as_str()
                .ok_or_else(|| Error::Setup(format!("POST /api/orders answered {status}: {order}")))?;
            placed.push((plan, id.to_owned(), correlation));
        }
        for (_, id, _) in &placed {
            self.host.wait_for_saga(id, Duration::from_secs(90)).await?;
        }
        self.events.extend(self.tap_all().await?);
        let after = self.host.moto.dynamodb_usage().await?;
        let share = placed.len() as f64;
        for (plan, id, correlation) in placed {
            let report = self
                .report(
                    name,
                    plan,
                    &id,
                    &correlation,
                    (after.read_units - before.read_units) / share,
                    (after.write_units - before.write_units) / share,
                )
                .await?;
            self.reports.push(report);
        }
        Ok(())
    }

    async fn tap_all(&self) -> Result<Vec<Value>, Error> {
        let mut all = Vec::new();
        loop {
            let batch = self.tap.poll().await?;
            if batch.is_empty() {
                return Ok(all);
            }
            all.extend(batch);
        }
    }

    async fn report(
        &self,
        scenario: &'static str,
        plan: &Planned,
        id: &str,
        correlation: &str,
        read_units: f64,
        write_units: f64,
    ) -> Result<Report, Error> {
        let (_, order) = self.call(reqwest::Method::GET, &format!("/orders/{id}"), None, "demo-report").await;
        let (payment_status, payment) =
            self.call(reqwest::Method::GET, &format!("/payments/order/{id}"), None, "demo-report").await;
        let (reservation_status, reservation) =
            self.call(reqwest::Method::GET, &format!("/reservations/order/{id}"), None, "demo-report").await;
        let status = order["status"].as_str().unwrap_or("?").to_owned();
        let reason = order["cancellation_reason"].as_str().map(str::to_owned);
        let as_expected = status == plan.expect.0 && reason.as_deref() == plan.expect.1;
        let outcome = match &reason {
            Some(reason) => format!("{status} ({reason})"),
            None => status.clone(),
        };

        let invocations: Vec<Invocation> = self
            .host
            .invocations()
            .into_iter()
            .filter(|i| i.correlation_id.as_deref() == Some(correlation) && i.attempt > 0)
            .collect();
        let events: Vec<&Value> = self.events.iter().filter(|e| e["detail"]["correlation_id"] == correlation).collect();
        let history = self.host.history_types(id).await?;
        let states = self.host.states_entered(id).await?;
        let task_states = history.iter().filter(|t| *t == "TaskStateEntered").count();
        let retries = history.iter().filter(|t| *t == "TaskScheduled").count().saturating_sub(task_states);

        println!("\n-- order {id}  [{scenario}]  {} x {}, {}", plan.quantity, plan.sku, plan.payment_method);
        print_timeline(&invocations, &events);
        println!(
            "   saga      {}  ({} transitions{})",
            states.join(" > "),
            states.len() + retries,
            if retries > 0 { format!(", {retries} retries") } else { String::new() }
        );
        let status_of = |code: u16, body: &Value| match code {
            200 => body["status"].as_str().unwrap_or("?").to_owned(),
            _ => "none".to_owned(),
        };
        let (payment, reservation) = (status_of(payment_status, &payment), status_of(reservation_status, &reservation));
        let expected = match plan.expect.1 {
            Some(reason) => format!("{} ({reason})", plan.expect.0),
            None => plan.expect.0.to_owned(),
        };
        println!(
            "   final     order {outcome}, payment {payment}, reservation {reservation}  {}",
            if as_expected { "as expected".to_owned() } else { format!("UNEXPECTED: wanted {expected}") }
        );
        Ok(Report {
            scenario,
            order_id: id.to_owned(),
            outcome,
            as_expected,
            lambda: invocations.len(),
            lambda_ms: invocations.iter().map(|i| i.duration.as_millis()).sum(),
            transitions: states.len() + retries,
            events: events.len(),
            read_units,
            write_units,
        })
    }

    fn summary(&self) -> bool {
        println!("\n== orders by outcome, and what each costs in AWS (per order; $ per million orders at list prices)");
        println!(
            "{:<46} {:>6} {:>8} {:>11} {:>7} {:>8} {:>8} {:>12}",
            "outcome", "orders", "λ calls", "transitions", "events", "DDB RRU", "DDB WRU", "$ / 1M"
        );
        let mut groups: BTreeMap<(String, &str), Vec<&Report>> = BTreeMap::new();
        for report in &self.reports {
            groups.entry((report.outcome.clone(), report.scenario)).or_default().push(report);
        }
        for ((outcome, scenario), reports) in &groups {
            let n = reports.len() as f64;
            let avg = |f: &dyn Fn(&Report) -> f64| reports.iter().map(|r| f(r)).sum::<f64>() / n;
            println!(
                "{:<46} {:>6} {:>8.1} {:>11.1} {:>7.1} {:>8.1} {:>8.1} {:>12.2}",
                format!("{outcome} [{scenario}]"),
                reports.len(),
                avg(&|r| r.lambda as f64),
                avg(&|r| r.transitions as f64),
                avg(&|r| r.events as f64),
                avg(&|r| r.read_units),
                avg(&|r| r.write_units),
                avg(&|r| r.dollars()) * 1e6,
            );
        }
        println!(
            "Prices: Lambda $0.20/M requests + $0.0000133334/GB-s (arm64, 256 MB, the handler time measured here); \
             HTTP API $1.00/M; Step Functions Standard $0.025/1000 transitions; EventBridge $1.00/M events; \
             DynamoDB on-demand $0.625/M WRU, $0.125/M RRU. Stream batches shared by concurrent orders are \
             counted once, for the order of their first record; DynamoDB units are the scenario's total split evenly."
        );
        let unexpected: Vec<&Report> = self.reports.iter().filter(|r| !r.as_expected).collect();
        for report in &unexpected {
            println!("UNEXPECTED: order {} ended {}", report.order_id, report.outcome);
        }
        unexpected.is_empty()
    }
}

/// An order's invocations and events in the order they happened, from its first.
fn print_timeline(invocations: &[Invocation], events: &[&Value]) {
    let mut timeline: Vec<(DateTime<Utc>, String)> = Vec::new();
    for invocation in invocations {
        let text = format!("λ {:<24} {:<32} {}", invocation.binary, invocation.trigger, invocation.outcome_text());
        timeline.push((invocation.at, text));
    }
    for event in events {
        let at = event["detail"]["occurred_at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let kind = if event["source"] == "shop.saga" { "command" } else { "event  " };
        let text = format!(
            "{kind} {:<24} from {}",
            event["detail-type"].as_str().unwrap_or("?"),
            event["source"].as_str().unwrap_or("?")
        );
        timeline.push((at.unwrap_or_default(), text));
    }
    timeline.sort_by_key(|(at, _)| *at);
    let start = timeline.first().map(|(at, _)| *at).unwrap_or_default();
    for (at, text) in &timeline {
        println!("   +{:>6.3}s  {text}", (*at - start).num_milliseconds() as f64 / 1000.0);
    }
}

fn uuid_suffix() -> String {
    let mut rng = fastrand::Rng::new();
    (0..8).map(|_| rng.alphanumeric()).collect()
}

/// The local system as the demo runs it: breaker and saga timings short enough to show recovery,
/// and a tap on the bus for each order's timeline.
async fn start() -> Result<Demo, Error> {
    // A shorter breaker wait than production's 30 s, so recovery shows within the demo.
    let env_overrides = BTreeMap::from([
        ("PAYMENT_PROVIDER_BREAKER_OPEN_MS".to_owned(), "3000".to_owned()),
        ("PAYMENT_PROVIDER_BREAKER_MINIMUM_CALLS".to_owned(), "4".to_owned()),
        ("PAYMENT_PROVIDER_BREAKER_WINDOW".to_owned(), "8".to_owned()),
    ]);
    let parameters = BTreeMap::from([
        ("SagaTaskTimeoutSeconds".to_owned(), "10".to_owned()),
        ("SagaPaymentTimeoutSeconds".to_owned(), "15".to_owned()),
    ]);
    println!("== starting the local system from template.yaml (moto, payment provider simulator, every function)");
    let host = Host::start(HostConfig { http_port: 0, env_overrides, parameters, ..HostConfig::default() }).await?;
    println!(
        "   HTTP APIs on {}, moto on {}, provider simulator on {}",
        host.base_url(),
        host.moto.endpoint(),
        host.simulator.base_url()
    );
    let Physical::Bus { name: bus } = host.resolver.physical("ShopEventBus")?.clone() else {
        return Err(Error::Setup("ShopEventBus is not a bus".into()));
    };
    let tap = EventTap::create(
        &host.moto,
        &bus,
        &local_aws::unique_name("demo-timeline"),
        &json!({"source": [{"prefix": "shop."}]}),
    )
    .await?;
    Ok(Demo { host, http: reqwest::Client::new(), tap, events: Vec::new(), reports: Vec::new() })
}

/// Six orders while the provider answers 503 to everything: the breaker opens and fails the
/// rest at once.
async fn outage(demo: &mut Demo) -> Result<(), Error> {
    println!("\n== a payment provider outage during a burst of 6 orders (the provider answers 503 to everything)");
    demo.host.simulator.simulator.set_faults(Faults { down: true, ..Faults::default() }).map_err(Error::Setup)?;
    let requests_before = demo.host.simulator.simulator.stats().requests;
    let burst: Vec<Planned> = (0..6)
        .map(|_| Planned {
            sku: "SKU-MUG",
            quantity: 1,
            payment_method: "pm_card_visa",
            expect: ("CANCELLED", Some("Transient")),
        })
        .collect();
    let charges_before = demo.host.invocations().iter().filter(|i| i.trigger == "ProcessPayment").count();
    demo.scenario("outage", &burst).await?;
    let attempts = demo.host.invocations().iter().filter(|i| i.trigger == "ProcessPayment").count() - charges_before;
    let reached = demo.host.simulator.simulator.stats().requests - requests_before;
    println!(
        "\n   the payments worker tried {attempts} charges (saga retries included); the provider saw {reached} requests: \
         the circuit breaker opened and failed the rest at once. Nothing was charged: the payments were voided."
    );
    demo.host.simulator.simulator.set_faults(Faults::default()).map_err(Error::Setup)?;
    Ok(())
}

/// Runs the demo; `Ok(false)` when an order ended in a state its scenario did not expect.
pub async fn run() -> Result<bool, Error> {
    let mut demo = start().await?;
    demo.seed().await?;

    println!("\n== a happy order");
    demo.scenario(
        "happy",
        &[Planned { sku: "SKU-MUG", quantity: 2, payment_method: "pm_card_visa", expect: ("CONFIRMED", None) }],
    )
    .await?;
    println!("\n== an order for a sku out of stock");
    demo.scenario(
        "out of stock",
        &[Planned {
            sku: "SKU-LAMP",
            quantity: 1,
            payment_method: "pm_card_visa",
            expect: ("CANCELLED", Some("InsufficientStock")),
        }],
    )
    .await?;
    println!("\n== a declined payment");
    demo.scenario(
        "declined",
        &[Planned {
            sku: "SKU-TEE",
            quantity: 1,
            payment_method: "pm_card_visa_chargeDeclined",
            expect: ("CANCELLED", Some("PaymentDeclined")),
        }],
    )
    .await?;

    outage(&mut demo).await?;
    println!("\n== the provider is back; after the breaker's open wait (3 s here) a probe closes it");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    demo.scenario(
        "recovery",
        &[Planned { sku: "SKU-MUG", quantity: 1, payment_method: "pm_card_visa", expect: ("CONFIRMED", None) }],
    )
    .await?;

    let as_expected = demo.summary();
    crate::metrics::print_table(&demo.http, &demo.host.base_url()).await;
    Ok(as_expected)
}
