//! `GET /_local/metrics`: the business metrics the functions emitted, as CloudWatch would hold
//! them. The functions write CloudWatch Embedded Metric Format documents
//! ([`shared::metrics`]); in the local host they go to one in-process collector instead of
//! stdout, read back through the EMF shape, so these are the figures CloudWatch would extract.

use axum::Json;
use serde_json::{Value, json};
use shared::metrics::{NAMESPACE, Series, collect_in_process};

/// The path the local host serves the metrics on (beside the template's routes).
pub const PATH: &str = "/_local/metrics";

/// Sends the functions' metrics to the in-process collector from now on.
pub(crate) fn install() {
    let _ = collect_in_process();
}

/// `{"namespace": "Shop", "series": [{name, dimensions, unit, samples, sum, min, max}, ...]}`.
pub(crate) async fn serve_metrics() -> Json<Value> {
    Json(json!({"namespace": NAMESPACE, "series": collect_in_process().snapshot()}))
}

/// The metrics as a table, one line per metric and dimension values: counts as sums, durations
/// as samples, average and maximum.
pub fn table(series: &[Series]) -> String {
    let mut out = format!("{:<22} {:<52} {:>8} {:>12} {:>10}\n", "metric", "dimensions", "samples", "sum / avg", "max");
    for s in series {
        let dimensions: Vec<String> = s.dimensions.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let (middle, max) = match s.unit.as_str() {
            "Milliseconds" => (format!("{:.1} ms", s.sum / s.samples.max(1) as f64), format!("{:.1} ms", s.max)),
            _ => (format!("{}", s.sum), String::new()),
        };
        out += &format!("{:<22} {:<52} {:>8} {:>12} {:>10}\n", s.name, dimensions.join(" "), s.samples, middle, max);
    }
    out
}

/// Reads `GET /_local/metrics` from a running local system at `base_url`.
pub async fn fetch(http: &reqwest::Client, base_url: &str) -> Result<Vec<Series>, String> {
    let response = http.get(format!("{base_url}{PATH}")).send().await.map_err(|e| e.to_string())?;
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    serde_json::from_value(body.get("series").cloned().unwrap_or(Value::Null)).map_err(|e| format!("{PATH}: {e}"))
}

/// The demo's last table: the business metrics as `GET /_local/metrics` serves them.
pub async fn print_table(http: &reqwest::Client, base_url: &str) {
    println!("\n== business metrics (CloudWatch EMF, namespace {NAMESPACE}; GET {base_url}{PATH})");
    match fetch(http, base_url).await {
        Ok(series) => print!("{}", table(&series)),
        Err(e) => println!("   could not read {PATH}: {e}"),
    }
}
