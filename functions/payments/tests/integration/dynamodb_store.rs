//! The payment service on DynamoDB (moto, table created from template.yaml) with the Stripe
//! adapter talking to the provider simulator, and the wiring the Lambda uses: the API key read
//! from Secrets Manager on first use, and read again when the provider refuses it (rotation).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use local_aws::fixtures::order_id;
use local_aws::{Moto, unique_name};
use payment_provider_sim::{Faults, RunningSimulator, Simulator, SimulatorConfig};
use payments::adapters::dynamodb::DynamoDbPaymentStore;
use payments::adapters::stripe::{ApiKey, SecretError, StripeProvider};
use payments::domain::{ChargeRequest, Lease, Payment, PaymentStatus};
use payments::ports::{PaymentStore, StoreError};
use payments::service::{LeaseConfig, PaymentService};
use shared::resilience::ServiceClientConfig;
use shared_core::Conditional;
use shared_core::CorrelationId;
use shared_core::OrderId;
use shared_core::money::Money;

const KEY: &str = "sk_test_moto";

struct Stack {
    _moto: Moto,
    sim: RunningSimulator,
    client: aws_sdk_dynamodb::Client,
    table: String,
    store: Arc<DynamoDbPaymentStore>,
    service: PaymentService,
}

async fn stack() -> Stack {
    let moto = Moto::start().await.unwrap();
    let table = moto.create_project_table("PaymentsTable", "payments").await.unwrap();
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config());
    let store = Arc::new(DynamoDbPaymentStore::new(client.clone(), &table));
    let config =
        SimulatorConfig { api_key: KEY.into(), faults: Faults::default(), seed: Some(3), ..SimulatorConfig::default() };
    let sim = Simulator::new(config).unwrap().spawn(0).await.unwrap();
    let base_url = sim.base_url();
    let provider_config =
        ServiceClientConfig::from_lookup("P", |n| (n == "P_BASE_URL").then(|| base_url.clone())).unwrap();
    let provider = StripeProvider::new(&provider_config, ApiKey::new(KEY)).unwrap();
    let lease = LeaseConfig { duration: Duration::from_secs(10), poll_interval: Duration::from_millis(25) };
    let service = PaymentService::new(store.clone(), Arc::new(provider), lease);
    Stack { _moto: moto, sim, client, table, store, service }
}

fn request(order_id: OrderId, payment_method: &str) -> ChargeRequest {
    ChargeRequest { order_id, amount: Money::new(4200, "EUR"), payment_method: payment_method.into() }
}

/// The outbox events in the table, by type, oldest first.
async fn outbox(stack: &Stack) -> Vec<String> {
    let scan = stack.client.scan().table_name(&stack.table).send().await.unwrap();
    let mut events: Vec<(String, String)> = scan
        .items()
        .iter()
        .filter(|item| item.get("entity").and_then(|e| e.as_s().ok()).is_some_and(|e| e == "OUTBOX"))
        .map(|item| {
            let sk = item["sk"].as_s().unwrap().clone();
            (sk, item["detail_type"].as_s().unwrap().clone())
        })
        .collect();
    events.sort();
    events.into_iter().map(|(_, t)| t).collect()
}

#[tokio::test]
async fn a_charge_is_captured_recorded_with_its_event_and_read_back() {
    let stack = stack().await;
    let payment =
        stack.service.charge(&request(order_id(1), "pm_card_visa"), &CorrelationId::generate()).await.unwrap();
    assert_eq!(payment.status, PaymentStatus::Captured);
    let intent = stack.sim.simulator.payment_intent(payment.provider_payment_id.as_deref().unwrap()).unwrap();
    assert_eq!((intent["amount"].as_u64(), intent["status"].as_str()), (Some(4200), Some("succeeded")));
    assert_eq!(stack.store.get(order_id(1)).await.unwrap(), Some(payment));
    assert_eq!(outbox(&stack).await, ["PaymentCompleted"]);
}

#[tokio::test]
async fn the_same_charge_issued_five_times_concurrently_charges_once() {
    let stack = stack().await;
    stack.sim.simulator.set_faults(Faults { latency_ms: 300, ..Faults::default() }).unwrap();
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let service = stack.service.clone();
            tokio::spawn(async move {
                service.charge(&request(order_id(1), "pm_card_visa"), &CorrelationId::generate()).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap().unwrap());
    }
    assert!(results.iter().all(|p| p == &results[0] && p.status == PaymentStatus::Captured), "{results:?}");
    let stats = stack.sim.simulator.stats();
    // One create (nothing charged) and one confirm, whatever the duplicates.
    assert_eq!((stats.requests, stats.payment_intents_created, stats.charges_succeeded), (2, 1, 1));
    assert_eq!(outbox(&stack).await, ["PaymentCompleted"]);
}

#[tokio::test]
async fn a_decline_is_one_provider_call_and_a_final_declined_payment() {
    let stack = stack().await;
    let correlation = CorrelationId::generate();
    let payment =
        stack.service.charge(&request(order_id(1), "pm_card_visa_chargeDeclined"), &correlation).await.unwrap();
    assert_eq!(payment.status, PaymentStatus::Declined);
    assert_eq!(payment.decline.as_ref().unwrap().reason, "generic_decline");
    stack.service.charge(&request(order_id(1), "pm_card_visa_chargeDeclined"), &correlation).await.unwrap();
    assert_eq!(stack.service.refund(order_id(1), &correlation).await.unwrap().unwrap().status, PaymentStatus::Declined);
    assert_eq!(stack.sim.simulator.stats().requests, 2, "a create and one confirm: no retry");
    assert_eq!(outbox(&stack).await, ["PaymentDeclined"]);
}

#[tokio::test]
async fn a_refund_before_the_charge_leaves_a_tombstone_the_late_charge_respects() {
    let stack = stack().await;
    let correlation = CorrelationId::generate();
    assert_eq!(stack.service.refund(order_id(1), &correlation).await.unwrap(), None);
    let tombstone = stack.store.get(order_id(1)).await.unwrap().unwrap();
    assert!(tombstone.tombstone, "stored and read back as a tombstone: {tombstone:?}");
    let late = stack.service.charge(&request(order_id(1), "pm_card_visa"), &correlation).await.unwrap();
    assert_eq!(late.status, PaymentStatus::Voided);
    assert_eq!(stack.service.get(order_id(1)).await.unwrap(), None);
    assert_eq!(stack.sim.simulator.stats().requests, 0, "nothing reached the provider");
}

#[tokio::test]
async fn a_refund_issued_twice_refunds_the_captured_amount_once() {
    let stack = stack().await;
    let correlation = CorrelationId::generate();
    let charged = stack.service.charge(&request(order_id(1), "pm_card_visa"), &correlation).await.unwrap();
    let first = stack.service.refund(order_id(1), &correlation).await.unwrap().unwrap();
    let second = stack.service.refund(order_id(1), &correlation).await.unwrap().unwrap();
    assert_eq!(first, second);
    assert_eq!(first.status, PaymentStatus::Refunded);
    let intent = charged.provider_payment_id.unwrap();
    assert_eq!(stack.sim.simulator.refunded(&intent), 4200);
    assert_eq!(stack.sim.simulator.stats().refunds_created, 1);
    assert_eq!(outbox(&stack).await, ["PaymentCompleted", "PaymentRefunded"]);
}

#[tokio::test]
async fn leases_are_conditional_on_status_and_expiry_and_only_the_owner_gives_one_back() {
    let stack = stack().await;
    let now = Utc::now();
    let now_ms = now.timestamp_millis();
    let lease = |owner: &str, ms: i64| Lease { owner: owner.into(), until_ms: now_ms + ms };
    let pending = Payment::pending(&request(order_id(1), "pm_card_visa"), lease("a", 60_000), now);
    assert_eq!(stack.store.create(&pending).await.unwrap(), Conditional::Applied);
    assert_eq!(stack.store.create(&pending).await.unwrap(), Conditional::Lost, "one payment per order");

    let store = &stack.store;
    assert_eq!(
        store.take_lease(order_id(1), PaymentStatus::Pending, &lease("b", 1000), now_ms, false).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .take_lease(order_id(1), PaymentStatus::Captured, &lease("b", 1000), now_ms + 120_000, false)
            .await
            .unwrap(),
        None
    );
    store.release_lease(order_id(1), "b", false).await.unwrap();
    assert_eq!(store.get(order_id(1)).await.unwrap().unwrap().lease.unwrap().owner, "a", "b never held it");
    store.release_lease(order_id(1), "a", false).await.unwrap();
    let released = store.get(order_id(1)).await.unwrap().unwrap();
    assert_eq!((released.lease, released.provider_contacted), (None, false));

    let before = store.take_lease(order_id(1), PaymentStatus::Pending, &lease("c", 1000), now_ms, true).await.unwrap();
    assert!(!before.unwrap().provider_contacted, "the payment as it was before");
    let after = store.get(order_id(1)).await.unwrap().unwrap();
    assert_eq!((after.lease.unwrap().owner.as_str(), after.provider_contacted), ("c", true));
}

#[tokio::test]
async fn the_api_key_is_read_from_secrets_manager_as_json_or_bare_and_a_bad_secret_says_which() {
    let moto = Moto::start().await.unwrap();
    let secrets = aws_sdk_secretsmanager::Client::new(&moto.sdk_config());
    for (name, value) in [("json", r#"{"api_key":"sk_test_json"}"#), ("bare", "sk_test_bare\n"), ("empty", "{}")] {
        secrets.create_secret().name(name).secret_string(value).send().await.unwrap();
    }
    let debug = |key: ApiKey| format!("{key:?}");
    assert_eq!(debug(ApiKey::from_secrets_manager(&secrets, "json").await.unwrap()), "ApiKey(<redacted>)");
    ApiKey::from_secrets_manager(&secrets, "bare").await.unwrap();
    let empty = ApiKey::from_secrets_manager(&secrets, "empty").await.unwrap_err();
    assert!(matches!(&empty, SecretError::Empty { secret_id } if secret_id == "empty"), "{empty:?}");
    let missing = ApiKey::from_secrets_manager(&secrets, "nope").await.unwrap_err();
    assert!(matches!(&missing, SecretError::Unreadable { .. }) && missing.to_string().contains("nope"), "{missing}");
}

#[tokio::test]
async fn the_lambda_wiring_reads_the_key_from_secrets_manager_and_charges_through_the_provider() {
    let moto = Moto::start().await.unwrap();
    let config = moto.sdk_config();
    let table = moto.create_project_table("PaymentsTable", "payments").await.unwrap();
    let secret = aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name("payment-provider")
        .secret_string(serde_json::json!({ "api_key": KEY }).to_string())
        .send()
        .await
        .unwrap();
    let sim = Simulator::new(SimulatorConfig { api_key: KEY.into(), ..SimulatorConfig::default() })
        .unwrap()
        .spawn(0)
        .await
        .unwrap();
    // Each nextest test is its own process, so setting the environment here is contained.
    unsafe {
        std::env::set_var("PAYMENTS_TABLE", &table);
        std::env::set_var("PAYMENT_PROVIDER_BASE_URL", sim.base_url());
        std::env::set_var("PAYMENT_PROVIDER_SECRET_ID", secret.arn().unwrap());
    }
    let service = payments::entrypoints::build_service(&config, &shared::config::process_env).await.unwrap();
    let payment = service.charge(&request(order_id(1), "pm_card_visa"), &CorrelationId::generate()).await.unwrap();
    assert_eq!(payment.status, PaymentStatus::Captured);
    assert_eq!(sim.simulator.stats().charges_succeeded, 1);

    // The secret is read on the first call, not at cold start: a missing secret fails the charge
    // (nothing sent to the provider), not the wiring.
    unsafe { std::env::set_var("PAYMENT_PROVIDER_SECRET_ID", "no-such-secret") };
    let service = payments::entrypoints::build_service(&config, &shared::config::process_env).await.unwrap();
    let err = service.charge(&request(order_id(2), "pm_card_visa"), &CorrelationId::generate()).await.unwrap_err();
    assert!(format!("{err:?}").contains("no-such-secret"), "{err:?}");
    assert_eq!(sim.simulator.stats().charges_succeeded, 1, "nothing reached the provider");
}

/// A Stripe that accepts one API key at a time (401 for any other, as Stripe answers an invalid
/// key: <https://docs.stripe.com/api/errors>), and records the key of every request.
#[derive(Clone, Default)]
struct RotatingStripe {
    accepted: Arc<std::sync::Mutex<String>>,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
}

impl RotatingStripe {
    async fn spawn(&self) -> String {
        use axum::extract::{Path, State};
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::{IntoResponse, Response};
        async fn check(stripe: &RotatingStripe, headers: &HeaderMap) -> Result<(), Response> {
            let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
            let key = bearer.trim_start_matches("Bearer ").to_owned();
            stripe.seen.lock().unwrap().push(key.clone());
            if key == *stripe.accepted.lock().unwrap() {
                return Ok(());
            }
            let body = serde_json::json!({ "error": { "type": "invalid_request_error", "message": "Invalid API Key provided" } });
            Err((StatusCode::UNAUTHORIZED, axum::Json(body)).into_response())
        }
        let intent = |id: &str, status: &str| {
            axum::Json(serde_json::json!({ "id": id, "object": "payment_intent", "status": status }))
        };
        let app = axum::Router::new()
            .route(
                "/v1/payment_intents",
                axum::routing::post(move |State(s): State<RotatingStripe>, headers: HeaderMap| async move {
                    check(&s, &headers)
                        .await
                        .map(|_| intent(&format!("pi_{}", s.seen.lock().unwrap().len()), "requires_confirmation"))
                }),
            )
            .route(
                "/v1/payment_intents/{id}/confirm",
                axum::routing::post(
                    move |State(s): State<RotatingStripe>, Path(id): Path<String>, headers: HeaderMap| async move {
                        check(&s, &headers).await.map(|_| intent(&id, "succeeded"))
                    },
                ),
            )
            .route(
                "/v1/payment_intents/{id}",
                axum::routing::get(
                    move |State(s): State<RotatingStripe>, Path(id): Path<String>, headers: HeaderMap| async move {
                        check(&s, &headers).await.map(|_| intent(&id, "succeeded"))
                    },
                ),
            )
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }
}

#[tokio::test]
async fn a_rotated_api_key_is_read_again_on_the_first_401_and_the_payment_succeeds_without_a_restart() {
    let moto = Moto::start().await.unwrap();
    let config = moto.sdk_config();
    let table = moto.create_project_table("PaymentsTable", "payments").await.unwrap();
    let stripe = RotatingStripe::default();
    *stripe.accepted.lock().unwrap() = "sk_test_old".into();
    let base_url = stripe.spawn().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let secret_id = unique_name("provider-key");
    let env = |name: &str| match name {
        "PAYMENTS_TABLE" => Some(table.clone()),
        "PAYMENT_PROVIDER_BASE_URL" => Some(base_url.clone()),
        "PAYMENT_PROVIDER_SECRET_ID" => Some(secret_id.clone()),
        // Far longer than the test: only the 401 can make the adapter read the secret again.
        "PAYMENT_PROVIDER_SECRET_TTL_SECONDS" => Some("3600".into()),
        _ => None,
    };
    // Built before the secret exists: the wiring reads nothing at cold start.
    let service = payments::entrypoints::build_service(&config, &env).await.unwrap();
    let old = serde_json::json!({ "api_key": "sk_test_old" }).to_string();
    secrets.create_secret().name(&secret_id).secret_string(old).send().await.unwrap();
    let first = service.charge(&request(order_id(1), "pm_card_visa"), &CorrelationId::generate()).await.unwrap();
    assert_eq!(first.status, PaymentStatus::Captured);

    // Rotation: the secret gets a new key and the provider stops accepting the old one.
    let new = serde_json::json!({ "api_key": "sk_test_new" }).to_string();
    secrets.put_secret_value().secret_id(&secret_id).secret_string(new).send().await.unwrap();
    *stripe.accepted.lock().unwrap() = "sk_test_new".into();
    stripe.seen.lock().unwrap().clear();
    let second = service.charge(&request(order_id(2), "pm_card_visa"), &CorrelationId::generate()).await.unwrap();
    assert_eq!(second.status, PaymentStatus::Captured, "the same instance charges with the rotated key");
    let seen = stripe.seen.lock().unwrap().clone();
    assert_eq!(seen.first().map(String::as_str), Some("sk_test_old"), "the cached key first: {seen:?}");
    assert_eq!(seen.iter().filter(|k| *k == "sk_test_old").count(), 1, "refused once, then never sent again: {seen:?}");
    assert!(
        seen[1..].iter().all(|k| k == "sk_test_new") && seen.len() >= 3,
        "create and confirm with the new key: {seen:?}"
    );
}

/// The provider's breaker is shared through the payments table: once one instance of the worker
/// opened it, a second instance (another Lambda execution environment, built from the same
/// wiring) fails fast at its first call and sends nothing to a provider that is down.
#[tokio::test]
async fn a_breaker_opened_by_one_instance_makes_another_instance_fail_fast() {
    let moto = Moto::start().await.unwrap();
    let config = moto.sdk_config();
    let table = moto.create_project_table("PaymentsTable", "payments").await.unwrap();
    let secret_id = unique_name("provider-key");
    aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name(&secret_id)
        .secret_string(serde_json::json!({ "api_key": KEY }).to_string())
        .send()
        .await
        .unwrap();
    let sim = Simulator::new(SimulatorConfig { api_key: KEY.into(), ..SimulatorConfig::default() })
        .unwrap()
        .spawn(0)
        .await
        .unwrap();
    sim.simulator.set_faults(Faults { down: true, ..Faults::default() }).unwrap();
    let base_url = sim.base_url().to_owned();
    let env = move |name: &str| {
        Some(
            match name {
                "PAYMENTS_TABLE" => table.as_str(),
                "PAYMENT_PROVIDER_BASE_URL" => base_url.as_str(),
                "PAYMENT_PROVIDER_SECRET_ID" => secret_id.as_str(),
                "PAYMENT_PROVIDER_RETRY_MAX_ATTEMPTS" => "1",
                "PAYMENT_PROVIDER_BREAKER_WINDOW" => "2",
                "PAYMENT_PROVIDER_BREAKER_MINIMUM_CALLS" => "2",
                "PAYMENT_PROVIDER_BREAKER_OPEN_MS" => "60000",
                _ => return None,
            }
            .to_owned(),
        )
    };
    let first = payments::entrypoints::build_service(&config, &env).await.unwrap();
    for order in [order_id(1), order_id(2), order_id(3)] {
        first.charge(&request(order, "pm_card_visa"), &CorrelationId::generate()).await.unwrap_err();
    }
    let sent = sim.simulator.stats().requests;
    assert!(sent >= 2, "the first instance reached the provider until its breaker opened: {sent}");

    let second = payments::entrypoints::build_service(&config, &env).await.unwrap();
    let err = second.charge(&request(order_id(4), "pm_card_visa"), &CorrelationId::generate()).await.unwrap_err();
    assert_eq!(sim.simulator.stats().requests, sent, "the second instance sent nothing: {err:?}");
    assert!(format!("{err:?}").to_lowercase().contains("open"), "it names the open circuit: {err:?}");
}

/// A table that fails: the store's error keeps the SDK's error as its source (`#[source]`), and
/// its message shows the request id and that error's chain down to DynamoDB's own words.
#[tokio::test]
async fn a_failing_table_is_a_backend_error_that_keeps_the_sdk_error_as_its_source() {
    use aws_sdk_dynamodb::config::http::HttpResponse;
    use aws_sdk_dynamodb::error::SdkError;
    use aws_sdk_dynamodb::operation::get_item::GetItemError;

    let moto = Moto::start().await.unwrap();
    let store = DynamoDbPaymentStore::new(aws_sdk_dynamodb::Client::new(&moto.sdk_config()), "no-such-table");
    let err = store.get(order_id(1)).await.unwrap_err();
    let source = std::error::Error::source(&err).expect("the cause is kept");
    let call = source.downcast_ref::<shared::aws::dynamo::Failed>().expect("the failed DynamoDB call");
    let request_id = call.request_id().expect("DynamoDB's answer names its request").to_owned();
    let sdk = std::error::Error::source(call).and_then(|e| e.downcast_ref::<SdkError<GetItemError, HttpResponse>>());
    let sdk = sdk.expect("the SDK's own error");
    assert!(sdk.as_service_error().is_some_and(GetItemError::is_resource_not_found_exception), "{sdk:?}");
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("ResourceNotFoundException") && message.contains(&request_id), "{message}");
}
