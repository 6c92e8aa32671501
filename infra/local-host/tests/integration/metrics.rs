//! The business metrics on the local system: orders placed over the services' APIs (signed with
//! SigV4, as their `AWS_IAM` routes require) end confirmed, out of stock and declined, and
//! `GET /_local/metrics` shows what CloudWatch would extract from the functions' EMF documents.

use std::time::{Duration, Instant};

use local_host::{Host, HostConfig};
use reqwest::Method;
use serde_json::{Value, json};
use shared::metrics::{Series, names};
use shared::resilience::{Policy, ServiceClient, SigV4};
use shared_core::CorrelationId;

struct Client {
    api: ServiceClient,
    correlation: CorrelationId,
}

impl Client {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let key = (method == Method::POST).then(|| uuid::Uuid::now_v7().to_string());
        let reply = self.api.send(method, path, body.as_ref(), key.as_deref(), &self.correlation).await;
        let reply = reply.unwrap_or_else(|e| panic!("{path}: {e}"));
        (reply.status.as_u16(), reply.json().unwrap_or(Value::Null))
    }

    async fn order(&self, sku: &str, payment_method: &str) -> String {
        let body = json!({"customer_id": "cust-metrics", "payment_method": payment_method,
                          "items": [{"sku": sku, "quantity": 1}]});
        let (status, order) = self.call(Method::POST, "/orders", Some(body)).await;
        assert_eq!(status, 201, "{order}");
        order["id"].as_str().unwrap().to_owned()
    }

    async fn final_status(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, order) = self.call(Method::GET, &format!("/orders/{id}"), None).await;
            assert_eq!(status, 200, "{order}");
            if order["status"] == "CONFIRMED" || order["status"] == "CANCELLED" {
                return order;
            }
            assert!(Instant::now() < deadline, "order {id} still {}", order["status"]);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn sum(series: &[Series], name: &str, filter: &[(&str, &str)]) -> f64 {
    series
        .iter()
        .filter(|s| s.name == name && filter.iter().all(|(k, v)| s.dimensions.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.sum)
        .sum()
}

fn samples(series: &[Series], name: &str) -> u64 {
    series.iter().filter(|s| s.name == name).map(|s| s.samples).sum()
}

#[tokio::test]
async fn orders_placed_on_the_local_system_show_in_its_business_metrics() {
    let host = Host::start(HostConfig { http_port: 0, ..HostConfig::default() })
        .await
        .expect("the local system starts (moto is installed by `make setup`)");
    let signer = SigV4::execute_api(&host.sdk).expect("the emulator's SDK config has credentials and a region");
    let policy = Policy::builder("metrics-test").build().expect("a policy with no limits is valid");
    let client = Client {
        api: ServiceClient::with_policy(host.base_url(), policy).signed(signer),
        correlation: CorrelationId::generate(),
    };
    let item = json!({"name": "Tea", "price": {"amount_minor": 450, "currency": "EUR"}, "low_stock_threshold": 1});
    let (status, body) = client.call(Method::PUT, "/inventory/SKU-METRIC", Some(item)).await;
    assert_eq!(status, 200, "{body}");
    let restock = json!({"restock_id": "initial", "quantity": 2});
    let (status, body) = client.call(Method::POST, "/inventory/SKU-METRIC/restock", Some(restock)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = client
        .call(
            Method::PUT,
            "/inventory/SKU-NONE",
            Some(json!({
        "name": "None", "price": {"amount_minor": 450, "currency": "EUR"}, "low_stock_threshold": 0})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let confirmed = client.order("SKU-METRIC", "pm_card_visa").await;
    let declined = client.order("SKU-METRIC", "pm_card_visa_chargeDeclined").await;
    let out_of_stock = client.order("SKU-NONE", "pm_card_visa").await;
    assert_eq!(client.final_status(&confirmed).await["status"], "CONFIRMED");
    assert_eq!(client.final_status(&declined).await["status"], "CANCELLED");
    assert_eq!(client.final_status(&out_of_stock).await["status"], "CANCELLED");

    // The relays publish OrderConfirmed/OrderCancelled after the status change: wait for their lag.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let series = loop {
        let series = local_host::metrics::fetch(&http, &host.base_url()).await.expect("GET /_local/metrics");
        if samples(&series, names::RELAY_PUBLISH_LAG) >= 6 || Instant::now() > deadline {
            break series;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let table = local_host::metrics::table(&series);
    assert_eq!(sum(&series, names::ORDERS_PLACED, &[("Service", "orders")]), 3.0, "{table}");
    assert_eq!(sum(&series, names::ORDERS_CONFIRMED, &[]), 1.0, "{table}");
    assert_eq!(sum(&series, names::ORDERS_CANCELLED, &[("Reason", "PaymentDeclined")]), 1.0, "{table}");
    assert_eq!(sum(&series, names::ORDERS_CANCELLED, &[("Reason", "InsufficientStock")]), 1.0, "{table}");
    assert_eq!(samples(&series, names::SAGA_DURATION), 3, "{table}");
    assert_eq!(sum(&series, names::PAYMENT_DECLINES, &[("Service", "payments")]), 1.0, "{table}");
    let confirms = |outcome| sum(&series, names::PROVIDER_CALLS, &[("Operation", "confirm"), ("Outcome", outcome)]);
    assert_eq!((confirms("captured"), confirms("declined")), (1.0, 1.0), "{table}");
    // Three OrderCreated, two of the three final order events, payments' and inventory's own.
    assert!(samples(&series, names::RELAY_PUBLISH_LAG) >= 6, "{table}");
    let lag = series.iter().find(|s| s.name == names::RELAY_PUBLISH_LAG).unwrap();
    assert!(lag.unit == "Milliseconds" && lag.min >= 0.0 && lag.max < 60_000.0, "{table}");
    let saga = series.iter().find(|s| s.name == names::SAGA_DURATION).unwrap();
    assert!(saga.max < 60_000.0 && saga.sum > 0.0, "{table}");
}
