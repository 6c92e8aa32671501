//! The invariants a settled shop must hold, each violation named with the order it concerns.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// What the run placed and what the shop says about it afterwards.
pub struct Observed {
    /// Order id -> its view from `GET /api/orders/{id}` (order, payment, reservation, saga).
    pub views: BTreeMap<String, Value>,
    /// Sku -> (unit price, stock at the start, units restocked once each during the run, available now).
    pub stock: BTreeMap<String, (u64, u64, u64, u64)>,
    /// Order id -> (captured, refunded) in minor units, as the payment provider recorded it.
    pub provider: BTreeMap<String, (u64, u64)>,
    /// Execution names of the state machine, with their status.
    pub executions: Vec<(String, String)>,
    /// The compensation machine's executions (`<order id>-<attempt>`), with their status.
    pub compensations: Vec<(String, String)>,
    /// Orders still `COMPENSATION_PENDING` (after the sweeper had its chance), with their parking.
    pub parked: BTreeMap<String, Value>,
    /// `event_id` -> what the outbox record is (`<detail-type> of <pk> in <table>`), for every
    /// outbox record of the three tables.
    pub outbox: BTreeMap<String, String>,
    /// `(event_id, detail-type)` of every domain event that reached the bus.
    pub bus: Vec<(String, String)>,
    /// Idempotency key -> every order id a 201 for it named.
    pub keys: BTreeMap<String, BTreeSet<String>>,
}

pub fn violations(o: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    let mut committed: BTreeMap<String, u64> = BTreeMap::new();
    for (id, view) in &o.views {
        order(o, id, view, &mut committed, &mut out);
    }
    for (sku, (_, initial, restocked, available)) in &o.stock {
        let sold = committed.get(sku).copied().unwrap_or(0);
        if initial + restocked != available + sold {
            out.push(format!("{sku}: {initial} + {restocked} restocked != {available} available + {sold} sold"));
        }
    }
    sagas(o, &mut out);
    events(o, &mut out);
    for (key, orders) in &o.keys {
        if orders.len() != 1 {
            out.push(format!("idempotency key {key} named {} orders: {orders:?}", orders.len()));
        }
    }
    out
}

/// One order's end state against its reservation, its payment and the provider's records; adds
/// what a CONFIRMED order sold to `committed`.
fn order(o: &Observed, id: &str, view: &Value, committed: &mut BTreeMap<String, u64>, out: &mut Vec<String>) {
    let status = view["order"]["status"].as_str().unwrap_or("?");
    let payment = view["payment"]["status"].as_str().unwrap_or("none");
    let reservation = view["reservation"]["status"].as_str().unwrap_or("none");
    let (captured, refunded) = o.provider.get(id).copied().unwrap_or_default();
    if !view["degraded"].as_array().is_none_or(Vec::is_empty) {
        out.push(format!("order {id}: the view is degraded: {}", view["degraded"]));
    }
    match status {
        "CONFIRMED" => {
            let total = view["reservation"]["total_minor"].as_u64().unwrap_or(0);
            if reservation != "COMMITTED" {
                out.push(format!("order {id}: CONFIRMED with reservation {reservation}"));
            }
            if payment != "CAPTURED" || view["payment"]["amount"]["amount_minor"].as_u64() != Some(total) {
                out.push(format!(
                    "order {id}: CONFIRMED, reservation total {total}, payment {payment} {}",
                    view["payment"]["amount"]
                ));
            }
            if captured.saturating_sub(refunded) != total {
                out.push(format!("order {id}: CONFIRMED for {total} but the provider holds {captured} - {refunded}"));
            }
            let sum = reserved_lines(o, id, view, committed, out);
            if sum != total {
                out.push(format!("order {id}: lines add up to {sum}, total says {total}"));
            }
        }
        "CANCELLED" => {
            if payment == "CAPTURED" || captured != refunded {
                out.push(format!("order {id}: CANCELLED with payment {payment}, provider {captured} - {refunded}"));
            }
            if reservation == "RESERVED" || reservation == "COMMITTED" {
                out.push(format!("order {id}: CANCELLED with stock {reservation}"));
            }
        }
        // A parked order (COMPENSATION_PENDING): `parked` reports those, with their parking,
        // from the table.
        _ if o.parked.contains_key(id) => {}
        other => out.push(format!("order {id}: ended {other} (payment {payment}, reservation {reservation})")),
    }
}

/// A confirmed order's reservation lines at catalogue prices; their sum.
fn reserved_lines(
    o: &Observed,
    id: &str,
    view: &Value,
    committed: &mut BTreeMap<String, u64>,
    out: &mut Vec<String>,
) -> u64 {
    let mut sum = 0;
    for line in view["reservation"]["lines"].as_array().into_iter().flatten() {
        let sku = line["sku"].as_str().unwrap_or_default();
        let quantity = line["quantity"].as_u64().unwrap_or(0);
        let price = o.stock.get(sku).map(|s| s.0);
        if price != line["unit_price_minor"].as_u64() {
            out.push(format!(
                "order {id}: {sku} reserved at {} not the catalogue's {price:?}",
                line["unit_price_minor"]
            ));
        }
        sum += quantity * line["unit_price_minor"].as_u64().unwrap_or(0);
        *committed.entry(sku.to_owned()).or_default() += quantity;
    }
    sum
}

/// One finished saga execution per order, no compensation running or orphaned, nothing parked.
fn sagas(o: &Observed, out: &mut Vec<String>) {
    let mut by_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, status) in &o.executions {
        by_name.entry(name).or_default().push(status);
    }
    for (id, parking) in &o.parked {
        out.push(format!(
            "order {id}: still COMPENSATION_PENDING after sweeping: {} failed with {} ({}), attempts {}, next at {}",
            parking["failed_step"], parking["error"], parking["cause"], parking["attempts"], parking["next_attempt_at"]
        ));
    }
    for (name, status) in &o.compensations {
        let order = name.get(..36).unwrap_or(name);
        if status == "RUNNING" {
            out.push(format!("compensation {name} still running"));
        }
        if !o.views.contains_key(order) || name.get(36..37) != Some("-") {
            out.push(format!("compensation {name} belongs to no order"));
        }
    }
    for id in o.views.keys() {
        match by_name.get(id.as_str()).map(Vec::as_slice) {
            Some([status]) if *status != "RUNNING" => {}
            other => out.push(format!("order {id}: saga executions {other:?}")),
        }
    }
    for name in by_name.keys().filter(|n| !o.views.contains_key(**n)) {
        out.push(format!("execution {name} has no order"));
    }
}

/// Every outbox record on the bus, and nothing on the bus without one.
fn events(o: &Observed, out: &mut Vec<String>) {
    let published: BTreeSet<&str> = o.bus.iter().map(|(id, _)| id.as_str()).collect();
    for (missing, what) in o.outbox.iter().filter(|(id, _)| !published.contains(id.as_str())) {
        out.push(format!("outbox record {missing} ({what}) never reached the bus"));
    }
    for (id, kind) in &o.bus {
        // StockLow is derived from the product's stream, not written to an outbox.
        if kind != "StockLow" && !o.outbox.contains_key(id) {
            out.push(format!("{kind} {id} reached the bus without an outbox record"));
        }
    }
}
