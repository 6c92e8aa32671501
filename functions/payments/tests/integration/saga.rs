//! The payments side of the saga on the `events/` fixtures: one charge and one refund whatever
//! the duplicates, and named failures the saga branches on.

use std::sync::Arc;

use local_aws::fixtures;
use payments::adapters::memory::{InMemoryPaymentStore, ScriptedProvider};
use payments::domain::Decline;
use payments::ports::{ChargeOutcome, ProviderError};
use payments::saga::PaymentsSagaWorker;
use payments::service::{LeaseConfig, PaymentService};
use serde_json::json;
use shared::aws::saga::{INVALID_COMMAND, InMemoryTaskReporter, TaskOutcome, dispatch};

use local_aws::fixtures::ORDER_ID;

fn worker(provider: Arc<ScriptedProvider>) -> PaymentsSagaWorker {
    let store = Arc::new(InMemoryPaymentStore::new());
    PaymentsSagaWorker::new(PaymentService::new(store, provider, LeaseConfig::default()))
}

#[tokio::test]
async fn process_then_refund_fixtures_charge_once_and_refund_once() {
    let provider = Arc::new(ScriptedProvider::new());
    let worker = worker(provider.clone());
    let reporter = InMemoryTaskReporter::new();
    let process = fixtures::eventbridge("payments-saga-worker", "process-payment.json").unwrap();
    for _ in 0..2 {
        let outcome = dispatch(process.clone(), &worker, &reporter).await.unwrap();
        assert_eq!(
            outcome,
            TaskOutcome::Success(json!({"status": "CAPTURED", "provider_payment_id": format!("pi_{ORDER_ID}")}))
        );
    }
    let refund = fixtures::eventbridge("payments-saga-worker", "refund-payment.json").unwrap();
    for _ in 0..2 {
        let outcome = dispatch(refund.clone(), &worker, &reporter).await.unwrap();
        assert_eq!(outcome, TaskOutcome::Success(json!({"status": "REFUNDED", "refund_id": format!("re_{ORDER_ID}")})));
    }
    assert_eq!((provider.charge_calls(), provider.refund_calls()), (1, 1));

    // A late charge command for the refunded order is refused by name and charges nothing.
    let late = dispatch(process, &worker, &reporter).await.unwrap();
    assert_eq!(late.error(), Some("PaymentCancelled"));
    assert_eq!(provider.charge_calls(), 1);
}

#[tokio::test]
async fn a_decline_is_payment_declined_and_an_outage_is_transient() {
    let provider = Arc::new(ScriptedProvider::new());
    provider.script([
        Err(ProviderError::Unavailable("HTTP 503".into())),
        Ok(ChargeOutcome::Declined {
            provider_payment_id: None,
            decline: Decline {
                reason: "insufficient_funds".into(),
                message: "Your card has insufficient funds.".into(),
            },
        }),
    ]);
    let worker = worker(provider);
    let reporter = InMemoryTaskReporter::new();
    let process = fixtures::eventbridge("payments-saga-worker", "process-payment.json").unwrap();
    assert_eq!(dispatch(process.clone(), &worker, &reporter).await.unwrap().error(), Some("Transient"));
    let TaskOutcome::Failure { error, cause } = dispatch(process, &worker, &reporter).await.unwrap() else {
        panic!("a decline is a failure")
    };
    assert_eq!(error, "PaymentDeclined");
    assert!(cause.starts_with("insufficient_funds"), "{cause}");
}

#[tokio::test]
async fn refunding_an_order_never_charged_answers_none() {
    let provider = Arc::new(ScriptedProvider::new());
    let worker = worker(provider.clone());
    let refund = fixtures::eventbridge("payments-saga-worker", "refund-payment.json").unwrap();
    let outcome = dispatch(refund, &worker, &InMemoryTaskReporter::new()).await.unwrap();
    assert_eq!(outcome, TaskOutcome::Success(json!({"status": "NONE"})));
    assert_eq!(provider.refund_calls(), 0);
}

#[tokio::test]
async fn a_charge_delivered_after_its_compensation_is_cancelled_and_charges_nothing() {
    let provider = Arc::new(ScriptedProvider::new());
    let worker = worker(provider.clone());
    let reporter = InMemoryTaskReporter::new();
    // Out of order: the compensation first (the saga timed out waiting), then the charge, twice.
    let refund = fixtures::eventbridge("payments-saga-worker", "refund-payment.json").unwrap();
    let outcome = dispatch(refund.clone(), &worker, &reporter).await.unwrap();
    assert_eq!(outcome, TaskOutcome::Success(json!({"status": "NONE"})));
    let process = fixtures::eventbridge("payments-saga-worker", "process-payment.json").unwrap();
    for _ in 0..2 {
        let late = dispatch(process.clone(), &worker, &reporter).await.unwrap();
        // Not `Transient`: the saga does not retry it.
        assert_eq!(late.error(), Some("PaymentCancelled"), "{late:?}");
    }
    assert_eq!(dispatch(refund, &worker, &reporter).await.unwrap(), TaskOutcome::Success(json!({"status": "NONE"})));
    assert_eq!((provider.create_calls(), provider.charge_calls(), provider.refund_calls()), (0, 0, 0));
}

type Command = aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value>;

/// What a newer producer sends: the same command with one more field in every object of its
/// detail (envelope, data, amount).
fn widened(mut event: Command) -> Command {
    event.detail = shared_core::envelope::widened(&event.detail);
    event
}

#[tokio::test]
async fn the_worker_reads_commands_with_fields_it_does_not_know() {
    let provider = Arc::new(ScriptedProvider::new());
    let worker = worker(provider.clone());
    let reporter = InMemoryTaskReporter::new();
    let process = widened(fixtures::eventbridge("payments-saga-worker", "process-payment.json").unwrap());
    assert_eq!(process.detail["data"]["amount"]["added_later"], json!("a field this consumer does not know yet"));
    let outcome = dispatch(process, &worker, &reporter).await.unwrap();
    assert_eq!(
        outcome,
        TaskOutcome::Success(json!({"status": "CAPTURED", "provider_payment_id": format!("pi_{ORDER_ID}")}))
    );
    let refund = widened(fixtures::eventbridge("payments-saga-worker", "refund-payment.json").unwrap());
    let outcome = dispatch(refund, &worker, &reporter).await.unwrap();
    assert_eq!(outcome, TaskOutcome::Success(json!({"status": "REFUNDED", "refund_id": format!("re_{ORDER_ID}")})));
}

/// Order ids are parsed where a command is read: one that is no order id (here, or at the HTTP
/// edge) is an `InvalidCommand`, and nothing reaches the provider.
#[tokio::test]
async fn a_command_for_an_order_id_that_is_no_order_id_is_an_invalid_command() {
    let provider = Arc::new(ScriptedProvider::new());
    let worker = worker(provider.clone());
    let reporter = InMemoryTaskReporter::new();
    for fixture in ["process-payment.json", "refund-payment.json"] {
        for bad in [json!("o-1"), json!(""), json!(ORDER_ID.replace('-', "")), json!(7)] {
            let mut command = fixtures::eventbridge("payments-saga-worker", fixture).unwrap();
            command.detail["data"]["order_id"] = bad.clone();
            let outcome = dispatch(command, &worker, &reporter).await.unwrap();
            assert_eq!(outcome.error(), Some(INVALID_COMMAND), "{fixture} with {bad}: {outcome:?}");
        }
    }
    assert_eq!((provider.charge_calls(), provider.refund_calls()), (0, 0));
}
