//! Business metrics in CloudWatch Embedded Metric Format (EMF).
//!
//! Each emission is one JSON object on one line of stdout, shaped as the specification says
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>):
//! a root `_aws` member with `Timestamp` (milliseconds since the epoch) and `CloudWatchMetrics`,
//! an array of one metric directive (`Namespace`, `Dimensions` as arrays of dimension keys,
//! `Metrics` as `{Name, Unit}`); and, on the root, every dimension key with its string value and
//! every metric name with its value (a number, or an array of at most 100 numbers). Lambda sends
//! stdout to CloudWatch Logs, which extracts the metrics: no `PutMetricData` call, no
//! permission, no latency on the request path.
//!
//! Why a writer of our own rather than `metrics_cloudwatch_embedded` (which works with
//! `lambda_runtime` 1.x): that crate aggregates through the `metrics` crate's one global recorder
//! and flushes at the end of each invocation through a layer wrapped around the function's
//! service, so every `main` would need that layer, and the local host, which runs every function
//! in one process, could not tell the functions' figures apart. Here a metric is written where it
//! happens, one line per business fact, which is what the functions emit at their rate.
//!
//! The local host calls [`collect_in_process`]: from then on documents go to an in-process
//! [`Collector`] instead of stdout (the same documents, read back through the EMF shape), which
//! `GET /_local/metrics` serves, so the local system shows the figures CloudWatch would.
//!
//! Each document has the full dimension set and, when it has more than one key, the first key
//! alone as a second set: cancellations are graphed per reason and in total.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The CloudWatch namespace of the shop's business metrics.
pub const NAMESPACE: &str = "Shop";
/// At most this many values per metric in one document (the specification's limit).
pub const MAX_VALUES: usize = 100;
/// At most this many keys in one dimension set (the specification's limit).
pub const MAX_DIMENSIONS: usize = 30;

/// The units the shop uses (CloudWatch's `StandardUnit` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF document: metrics that share one set of dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSet {
    dimensions: Vec<(&'static str, String)>,
    metrics: Vec<(&'static str, Vec<f64>, Unit)>,
    timestamp_ms: i64,
}

impl Default for MetricSet {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricSet {
    pub fn new() -> Self {
        Self { dimensions: Vec::new(), metrics: Vec::new(), timestamp_ms: chrono::Utc::now().timestamp_millis() }
    }

    /// Adds a dimension (keys are the shop's constants; values should have few distinct values).
    pub fn dimension(mut self, key: &'static str, value: impl Into<String>) -> Self {
        if self.dimensions.len() < MAX_DIMENSIONS {
            self.dimensions.push((key, value.into()));
        }
        self
    }

    pub fn metric(self, name: &'static str, value: f64, unit: Unit) -> Self {
        self.values(name, vec![value], unit)
    }

    /// Several values of one metric (at most [`MAX_VALUES`] are kept; use [`emit_values`]
    /// for more).
    pub fn values(mut self, name: &'static str, mut values: Vec<f64>, unit: Unit) -> Self {
        values.truncate(MAX_VALUES);
        values.retain(|v| v.is_finite());
        self.metrics.push((name, values, unit));
        self
    }

    pub fn at(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = timestamp_ms;
        self
    }

    /// The EMF document.
    pub fn to_emf(&self) -> Value {
        serde_json::to_value(self).expect("a metric set serialises")
    }

    /// Writes the document: one line on stdout, or into the in-process collector.
    pub fn emit(self) {
        if self.metrics.iter().all(|(_, values, _)| values.is_empty()) {
            return;
        }
        match COLLECTOR.get() {
            Some(collector) => collector.record(&self.to_emf()),
            None => {
                use std::io::Write;
                // One write of the whole line, so it is never interleaved with log lines.
                // Written straight from the set: building the document as a `Value` first cost
                // a payment's charge a third of its CPU (two provider calls, a line each).
                let mut line = Vec::with_capacity(512);
                serde_json::to_writer(&mut line, &self).expect("a metric set serialises");
                line.push(b'\n');
                let _ = std::io::stdout().lock().write_all(&line);
            }
        }
    }
}

/// The EMF document of a set: `_aws` with the metric directive, then each dimension and each
/// metric on the root. A key given twice is written once, with its last value (a metric's over
/// a dimension's), as a JSON object can hold it; `_aws` is always the metadata.
impl Serialize for MetricSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;

        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Aws<'a> {
            timestamp: i64,
            cloud_watch_metrics: [Directive<'a>; 1],
        }
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Directive<'a> {
            namespace: &'static str,
            dimensions: Vec<Vec<&'a str>>,
            metrics: Vec<Definition<'a>>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Definition<'a> {
            name: &'a str,
            unit: &'static str,
        }

        let keys: Vec<&str> = self.dimensions.iter().map(|(k, _)| *k).collect();
        let mut dimensions = vec![keys.clone()];
        if keys.len() > 1 {
            dimensions.push(vec![keys[0]]);
        }
        let metrics = self.metrics.iter().map(|(name, _, unit)| Definition { name, unit: unit.as_str() }).collect();
        let aws = Aws {
            timestamp: self.timestamp_ms,
            cloud_watch_metrics: [Directive { namespace: NAMESPACE, dimensions, metrics }],
        };
        let is_metric = |key: &str| self.metrics.iter().any(|(name, ..)| *name == key);
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("_aws", &aws)?;
        for (at, (key, value)) in self.dimensions.iter().enumerate() {
            let given_again = self.dimensions[at + 1..].iter().any(|(later, _)| later == key);
            if !(*key == "_aws" || given_again || is_metric(key)) {
                map.serialize_entry(key, value)?;
            }
        }
        for (at, (name, values, _)) in self.metrics.iter().enumerate() {
            if *name == "_aws" || self.metrics[at + 1..].iter().any(|(later, ..)| later == name) {
                continue;
            }
            match values.as_slice() {
                [one] => map.serialize_entry(name, one)?,
                many => map.serialize_entry(name, many)?,
            }
        }
        map.end()
    }
}

/// Emits `values` of one metric in documents of at most [`MAX_VALUES`].
pub fn emit_values(dimensions: &[(&'static str, String)], name: &'static str, values: &[f64], unit: Unit) {
    for chunk in values.chunks(MAX_VALUES) {
        let mut set = MetricSet::new();
        for (key, value) in dimensions {
            set = set.dimension(key, value.clone());
        }
        set.values(name, chunk.to_vec(), unit).emit();
    }
}

static COLLECTOR: OnceLock<Arc<Collector>> = OnceLock::new();

/// Sends every later document to an in-process collector instead of stdout, and returns it (the
/// same one on every call). For the local host, which runs every function in its own process.
pub fn collect_in_process() -> Arc<Collector> {
    COLLECTOR.get_or_init(|| Arc::new(Collector::default())).clone()
}

/// The figures of one metric under one set of dimension values, as CloudWatch's statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
    pub unit: String,
    /// CloudWatch's `SampleCount`.
    pub samples: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

/// A metric's name and its dimension values, in key order.
type SeriesKey = (String, Vec<(String, String)>);

/// Aggregates EMF documents the way CloudWatch would extract them (full dimension set only).
#[derive(Debug, Default)]
pub struct Collector {
    series: Mutex<BTreeMap<SeriesKey, Series>>,
}

impl Collector {
    /// Reads one EMF document; what does not follow the specification is ignored, as CloudWatch
    /// ignores it.
    pub fn record(&self, document: &Value) {
        let Some(directives) = document.pointer("/_aws/CloudWatchMetrics").and_then(Value::as_array) else {
            return;
        };
        let mut series = self.series.lock().unwrap();
        for directive in directives {
            let keys = directive.pointer("/Dimensions/0").and_then(Value::as_array).cloned().unwrap_or_default();
            let dimensions: Vec<(String, String)> = keys
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|k| Some((k.to_owned(), document.get(k)?.as_str()?.to_owned())))
                .collect();
            for metric in directive.get("Metrics").and_then(Value::as_array).into_iter().flatten() {
                let Some(name) = metric.get("Name").and_then(Value::as_str) else { continue };
                let unit = metric.get("Unit").and_then(Value::as_str).unwrap_or("None");
                let values: Vec<f64> = match document.get(name) {
                    Some(Value::Array(values)) => values.iter().filter_map(Value::as_f64).collect(),
                    Some(value) => value.as_f64().into_iter().collect(),
                    None => continue,
                };
                let entry = series.entry((name.to_owned(), dimensions.clone())).or_insert_with(|| Series {
                    name: name.to_owned(),
                    dimensions: dimensions.iter().cloned().collect(),
                    unit: unit.to_owned(),
                    samples: 0,
                    sum: 0.0,
                    min: f64::INFINITY,
                    max: f64::NEG_INFINITY,
                });
                for value in values {
                    entry.samples += 1;
                    entry.sum += value;
                    entry.min = entry.min.min(value);
                    entry.max = entry.max.max(value);
                }
            }
        }
    }

    pub fn snapshot(&self) -> Vec<Series> {
        self.series.lock().unwrap().values().cloned().collect()
    }

    /// The sum of `name` over every series whose dimensions include all of `filter`.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.snapshot()
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| filter.iter().all(|(k, v)| s.dimensions.get(*k).map(String::as_str) == Some(*v)))
            .map(|s| s.sum)
            .sum()
    }
}

// ---------------------------------------------------------------- the shop's metrics

/// Metric names, in one place for the dashboard, the alarms and the README.
pub mod names {
    pub const ORDERS_PLACED: &str = "OrdersPlaced";
    pub const ORDERS_CONFIRMED: &str = "OrdersConfirmed";
    pub const ORDERS_CANCELLED: &str = "OrdersCancelled";
    pub const SAGA_DURATION: &str = "SagaDuration";
    pub const PAYMENT_DECLINES: &str = "PaymentDeclines";
    pub const PROVIDER_CALLS: &str = "ProviderCalls";
    pub const PROVIDER_CALL_DURATION: &str = "ProviderCallDuration";
    pub const BREAKER_STATE_CHANGES: &str = "BreakerStateChanges";
    pub const RELAY_PUBLISH_LAG: &str = "RelayPublishLag";

    /// Every metric the shop emits (the dashboard's test reads this list).
    pub const ALL: [&str; 9] = [
        ORDERS_PLACED,
        ORDERS_CONFIRMED,
        ORDERS_CANCELLED,
        SAGA_DURATION,
        PAYMENT_DECLINES,
        PROVIDER_CALLS,
        PROVIDER_CALL_DURATION,
        BREAKER_STATE_CHANGES,
        RELAY_PUBLISH_LAG,
    ];
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// A new order was recorded (not an idempotent replay).
pub fn order_placed() {
    MetricSet::new().dimension("Service", "orders").metric(names::ORDERS_PLACED, 1.0, Unit::Count).emit();
}

/// An order was confirmed, `saga` after it was placed.
pub fn order_confirmed(saga: Duration) {
    MetricSet::new().dimension("Service", "orders").metric(names::ORDERS_CONFIRMED, 1.0, Unit::Count).emit();
    saga_finished("CONFIRMED", saga);
}

/// An order was cancelled for `reason` (the saga's error name), `saga` after it was placed.
pub fn order_cancelled(reason: &str, saga: Duration) {
    MetricSet::new()
        .dimension("Service", "orders")
        .dimension("Reason", reason)
        .metric(names::ORDERS_CANCELLED, 1.0, Unit::Count)
        .emit();
    saga_finished("CANCELLED", saga);
}

fn saga_finished(outcome: &str, saga: Duration) {
    MetricSet::new()
        .dimension("Service", "orders")
        .dimension("Outcome", outcome)
        .metric(names::SAGA_DURATION, millis(saga), Unit::Milliseconds)
        .emit();
}

/// The provider declined a charge for `reason` (e.g. `card_declined`).
pub fn payment_declined(reason: &str) {
    MetricSet::new()
        .dimension("Service", "payments")
        .dimension("Reason", reason)
        .metric(names::PAYMENT_DECLINES, 1.0, Unit::Count)
        .emit();
}

/// One call to the payment provider: `operation` (`create`, `confirm`, ...) ended in `outcome`
/// (`captured`, `declined`, `unavailable`, ...) after `took`.
pub fn provider_call(operation: &str, outcome: &str, took: Duration) {
    MetricSet::new()
        .dimension("Service", "payments")
        .dimension("Operation", operation)
        .dimension("Outcome", outcome)
        .metric(names::PROVIDER_CALLS, 1.0, Unit::Count)
        .metric(names::PROVIDER_CALL_DURATION, millis(took), Unit::Milliseconds)
        .emit();
}

/// A circuit breaker moved to `state` (`OPEN`, `HALF_OPEN`, `CLOSED`).
pub fn breaker_state_changed(breaker: &str, state: &str) {
    MetricSet::new()
        .dimension("Breaker", breaker)
        .dimension("State", state)
        .metric(names::BREAKER_STATE_CHANGES, 1.0, Unit::Count)
        .emit();
}

/// How long the published events of one relayed batch waited since their outbox records were
/// written, per publishing service (`shop.orders` gives `orders`).
pub fn relay_lag(source: &str, lags: &[Duration]) {
    let service = source.strip_prefix("shop.").unwrap_or(source).to_owned();
    let values: Vec<f64> = lags.iter().map(|d| millis(*d)).collect();
    emit_values(&[("Service", service)], names::RELAY_PUBLISH_LAG, &values, Unit::Milliseconds);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The operations dashboard of template.yaml plots every metric the shop emits, in this
    /// namespace: as a metric row or inside a `SEARCH` expression.
    #[test]
    fn the_dashboard_plots_every_metric() {
        let template = local_aws::template::Template::load_project().unwrap();
        let dashboard = &template.resource("OperationsDashboard").unwrap().properties["DashboardBody"];
        let serde_norway::Value::Tagged(sub) = dashboard else { panic!("DashboardBody is a !Sub: {dashboard:?}") };
        let body: Value = serde_json::from_str(sub.value.as_str().unwrap()).unwrap();
        let rows: Vec<&Value> = body["widgets"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|w| w["properties"]["metrics"].as_array().unwrap())
            .collect();
        for name in names::ALL {
            let searched = format!("{{{NAMESPACE},");
            let plotted = rows.iter().any(|row| {
                (row[0] == NAMESPACE && row[1] == name)
                    || row[0]["expression"]
                        .as_str()
                        .is_some_and(|e| e.contains(&searched) && e.contains(&format!("MetricName=\"{name}\"")))
            });
            assert!(plotted, "{name} is not on the dashboard");
        }
    }

    /// Checks `document` against the specification's rules, member by member.
    fn assert_follows_the_specification(document: &Value) {
        let root = document.as_object().expect("the root node is an object");
        let aws = root["_aws"].as_object().expect("_aws is an object");
        let mut aws_members: Vec<&str> = aws.keys().map(String::as_str).collect();
        aws_members.sort();
        assert_eq!(aws_members, ["CloudWatchMetrics", "Timestamp"], "the metadata object holds no other member");
        let timestamp = aws["Timestamp"].as_i64().expect("Timestamp is a number of milliseconds since the epoch");
        assert!(timestamp > 1_600_000_000_000, "milliseconds, not seconds: {timestamp}");
        let directives = aws["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics is an array");
        assert!(!directives.is_empty());
        for directive in directives {
            let directive = directive.as_object().unwrap();
            let mut members: Vec<&str> = directive.keys().map(String::as_str).collect();
            members.sort();
            assert_eq!(members, ["Dimensions", "Metrics", "Namespace"]);
            let namespace = directive["Namespace"].as_str().unwrap();
            assert!((1..=255).contains(&namespace.len()));
            for set in directive["Dimensions"].as_array().expect("Dimensions is an array of DimensionSets") {
                let set = set.as_array().expect("a DimensionSet is an array of keys");
                assert!(set.len() <= MAX_DIMENSIONS);
                for key in set {
                    let key = key.as_str().expect("dimension keys are strings");
                    assert!(root[key].is_string(), "the root holds dimension {key} as a string");
                }
            }
            let metrics = directive["Metrics"].as_array().unwrap();
            assert!((1..=100).contains(&metrics.len()), "1 to 100 MetricDefinitions");
            for metric in metrics {
                let metric = metric.as_object().unwrap();
                let name = metric["Name"].as_str().expect("Name is a string");
                assert!((1..=255).contains(&name.len()));
                let unit = metric["Unit"].as_str().unwrap();
                assert!(["Count", "Milliseconds"].contains(&unit), "{unit} is a CloudWatch unit");
                match &root[name] {
                    Value::Number(_) => {}
                    Value::Array(values) => {
                        assert!(values.len() <= MAX_VALUES && values.iter().all(Value::is_number), "{name}")
                    }
                    other => panic!("the root holds metric {name} as a number or numbers, not {other}"),
                }
            }
        }
    }

    #[test]
    fn a_document_has_the_metadata_the_dimensions_and_the_values_on_its_root() {
        let document = MetricSet::new()
            .at(1_795_773_600_123)
            .dimension("Service", "orders")
            .dimension("Reason", "PaymentDeclined")
            .metric("OrdersCancelled", 1.0, Unit::Count)
            .to_emf();
        assert_follows_the_specification(&document);
        assert_eq!(
            document,
            json!({
                "_aws": {"Timestamp": 1_795_773_600_123_i64, "CloudWatchMetrics": [{
                    "Namespace": "Shop",
                    "Dimensions": [["Service", "Reason"], ["Service"]],
                    "Metrics": [{"Name": "OrdersCancelled", "Unit": "Count"}],
                }]},
                "Service": "orders",
                "Reason": "PaymentDeclined",
                "OrdersCancelled": 1.0,
            })
        );
    }

    #[test]
    fn a_key_given_twice_is_written_once_with_its_last_value() {
        let set = MetricSet::new()
            .dimension("Service", "orders")
            .dimension("Service", "payments")
            .dimension("OrdersPlaced", "shadowed")
            .dimension("_aws", "not metadata")
            .metric("OrdersPlaced", 1.0, Unit::Count)
            .metric("OrdersPlaced", 2.0, Unit::Count)
            .at(1_700_000_000_000);
        let line = String::from_utf8(serde_json::to_vec(&set).unwrap()).unwrap();
        for key in ["\"Service\":", "\"OrdersPlaced\":", "\"_aws\":"] {
            assert_eq!(line.matches(key).count(), 1, "{key} in {line}");
        }
        let document = set.to_emf();
        assert_eq!(document["Service"], "payments");
        assert_eq!(document["OrdersPlaced"], 2.0);
        assert_eq!(document["_aws"]["Timestamp"], 1_700_000_000_000i64);
    }

    #[test]
    fn many_values_are_one_array_of_at_most_a_hundred_and_non_finite_values_are_dropped() {
        let document = MetricSet::new()
            .dimension("Service", "inventory")
            .values("RelayPublishLag", (0..150).map(f64::from).collect(), Unit::Milliseconds)
            .to_emf();
        assert_follows_the_specification(&document);
        assert_eq!(document["RelayPublishLag"].as_array().unwrap().len(), MAX_VALUES);
        assert_eq!(document["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Service"]]));
        let document = MetricSet::new().values("X", vec![1.0, f64::NAN, f64::INFINITY], Unit::Count).to_emf();
        assert_eq!(document["X"], json!(1.0));
    }

    #[test]
    fn the_collector_reads_documents_back_as_cloudwatch_statistics() {
        let collector = Collector::default();
        for (reason, value) in [("PaymentDeclined", 1.0), ("PaymentDeclined", 1.0), ("InsufficientStock", 1.0)] {
            let set = MetricSet::new().dimension("Service", "orders").dimension("Reason", reason);
            collector.record(&set.metric("OrdersCancelled", value, Unit::Count).to_emf());
        }
        let lags =
            MetricSet::new().dimension("Service", "orders").values("Lag", vec![5.0, 1.0, 9.0], Unit::Milliseconds);
        collector.record(&lags.to_emf());
        collector.record(&json!({"not": "emf", "OrdersCancelled": 7}));
        assert_eq!(collector.sum("OrdersCancelled", &[]), 3.0);
        assert_eq!(collector.sum("OrdersCancelled", &[("Reason", "PaymentDeclined")]), 2.0);
        let lag = collector.snapshot().into_iter().find(|s| s.name == "Lag").unwrap();
        assert_eq!((lag.samples, lag.sum, lag.min, lag.max), (3, 15.0, 1.0, 9.0));
        assert_eq!(lag.unit, "Milliseconds");
    }

    #[tokio::test]
    async fn a_breaker_that_opens_and_closes_again_counts_each_state_change() {
        use crate::resilience::{BreakerConfig, CircuitBreaker, SlidingWindow};
        let collector = collect_in_process();
        let config = BreakerConfig {
            window: SlidingWindow::Count(1),
            minimum_calls: 1,
            permitted_in_half_open: 1,
            wait_in_open: Duration::from_millis(1),
            slow_call_duration: None,
            ..BreakerConfig::default()
        };
        let breaker = CircuitBreaker::new("metrics-test-breaker", config).unwrap();
        let _ = breaker.call(|_: &()| true, async { Err::<(), ()>(()) }).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let _ = breaker.call(|_: &()| true, async { Ok::<(), ()>(()) }).await;
        let changes = |state| {
            collector.sum(names::BREAKER_STATE_CHANGES, &[("Breaker", "metrics-test-breaker"), ("State", state)])
        };
        assert_eq!((changes("OPEN"), changes("HALF_OPEN"), changes("CLOSED")), (1.0, 1.0, 1.0));
    }

    #[test]
    fn every_shop_metric_follows_the_specification() {
        let documents = [
            MetricSet::new().dimension("Service", "orders").metric(names::ORDERS_PLACED, 1.0, Unit::Count),
            MetricSet::new()
                .dimension("Service", "payments")
                .dimension("Operation", "confirm")
                .dimension("Outcome", "captured")
                .metric(names::PROVIDER_CALLS, 1.0, Unit::Count)
                .metric(names::PROVIDER_CALL_DURATION, 12.5, Unit::Milliseconds),
            MetricSet::new().dimension("Breaker", "payment-provider").dimension("State", "OPEN").metric(
                names::BREAKER_STATE_CHANGES,
                1.0,
                Unit::Count,
            ),
        ];
        for document in documents {
            assert_follows_the_specification(&document.to_emf());
        }
    }
}
