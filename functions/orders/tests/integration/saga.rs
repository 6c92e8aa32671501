//! The orders side of the saga on the `events/` fixtures: the starter starts one execution per
//! order whatever the duplicates, and the worker confirms or cancels exactly once.

use std::sync::Arc;

use chrono::Utc;
use local_aws::fixtures;
use orders::adapters::memory::{InMemoryOrderStore, InMemorySagaStarter};
use orders::domain::{Order, OrderStatus, PlaceOrderRequest, RequestedItem};
use orders::ports::OrderStore;
use orders::saga::{OrdersSagaWorker, SagaSettings, StartError, StartOutcome, start_for_event};
use orders::service::OrderService;
use serde_json::json;
use shared::aws::saga::{InMemoryTaskReporter, TaskOutcome, WorkerError, dispatch};
use shared_core::OrderId;

use local_aws::fixtures::ORDER_ID;

use crate::support::event_types;

#[tokio::test]
async fn the_starter_fixture_starts_one_execution_named_after_the_order_and_a_duplicate_finds_it() {
    let starter = InMemorySagaStarter::new();
    let settings = SagaSettings { task_timeout_seconds: 7, payment_timeout_seconds: 9 };
    let event = fixtures::eventbridge("orders-saga-starter", "order-created.json").unwrap();
    let first = start_for_event(event.clone(), &starter, settings).await.unwrap();
    assert!(matches!(first, StartOutcome::Started { execution_arn } if execution_arn.ends_with(ORDER_ID)));
    let again = start_for_event(event, &starter, settings).await.unwrap();
    assert!(matches!(again, StartOutcome::AlreadyStarted { .. }), "{again:?}");

    let started = starter.started();
    assert_eq!(started.len(), 1);
    let (name, input) = &started[0];
    assert_eq!(name, ORDER_ID);
    // The fixture carries no traceparent: the saga starts a new trace, which every command continues.
    let mut input = serde_json::to_value(input).unwrap();
    let traceparent = input.as_object_mut().unwrap().remove("traceparent").unwrap();
    assert!(shared_core::trace::TraceContext::parse(traceparent.as_str().unwrap()).is_some(), "{traceparent}");
    assert_eq!(
        input,
        json!({"order_id": ORDER_ID, "customer_id": "cust-42", "payment_method": "pm_card_visa",
               "lines": [{"sku": "SKU-RED-MUG", "quantity": 2}], "correlation_id": "demo-correlation-1",
               "settings": {"task_timeout_seconds": 7, "payment_timeout_seconds": 9}})
    );
}

#[tokio::test]
async fn the_starter_refuses_events_that_are_not_order_created() {
    let starter = InMemorySagaStarter::new();
    let mut event = fixtures::eventbridge("orders-saga-starter", "order-created.json").unwrap();
    event.detail_type = "OrderConfirmed".into();
    let err = start_for_event(event.clone(), &starter, SagaSettings::default()).await.unwrap_err();
    assert!(matches!(err, StartError::NotOrderCreated(_)));
    event.detail_type = "OrderCreated".into();
    event.detail["data"]["lines"] = json!("two mugs");
    let err = start_for_event(event, &starter, SagaSettings::default()).await.unwrap_err();
    assert!(err.to_string().contains("data.lines"), "{err}");
    assert!(starter.started().is_empty());
}

/// A pending order with the fixtures' id.
async fn pending_order(store: &InMemoryOrderStore) -> Order {
    let request = PlaceOrderRequest {
        customer_id: "cust-42".into(),
        payment_method: "pm_card_visa".into(),
        items: vec![RequestedItem { sku: "SKU-RED-MUG".into(), quantity: 2 }],
    };
    let mut order = Order::place(request.validate().unwrap(), Utc::now());
    order.id = OrderId::parse(ORDER_ID).unwrap();
    store.create(&order, &[], None).await.unwrap();
    order
}

#[tokio::test]
async fn confirm_order_confirms_once_and_answers_the_saga_each_time() {
    let store = Arc::new(InMemoryOrderStore::new());
    pending_order(&store).await;
    let worker = OrdersSagaWorker::new(OrderService::new(store.clone()));
    let reporter = InMemoryTaskReporter::new();
    let event = fixtures::eventbridge("orders-saga-worker", "confirm-order.json").unwrap();
    for _ in 0..2 {
        let outcome = dispatch(event.clone(), &worker, &reporter).await.unwrap();
        assert_eq!(outcome, TaskOutcome::Success(json!({"status": "CONFIRMED"})));
    }
    assert_eq!(event_types(&store), ["OrderConfirmed"], "one event for two deliveries");
    assert_eq!(reporter.answers()[0].0, "AQCEAAAAKgAAAAMAAAAAAAAAAdemo-task-token-ConfirmOrder");

    // A confirmed order is never cancelled silently: the compensation fails by name.
    let cancel = fixtures::eventbridge("orders-saga-worker", "cancel-order.json").unwrap();
    let outcome = dispatch(cancel, &worker, &reporter).await.unwrap();
    assert_eq!(outcome.error(), Some("OrderAlreadyConfirmed"));
}

#[tokio::test]
async fn cancel_order_cancels_once_with_the_sagas_reason() {
    let store = Arc::new(InMemoryOrderStore::new());
    pending_order(&store).await;
    let service = OrderService::new(store.clone());
    let worker = OrdersSagaWorker::new(service.clone());
    let reporter = InMemoryTaskReporter::new();
    let event = fixtures::eventbridge("orders-saga-worker", "cancel-order.json").unwrap();
    for _ in 0..2 {
        let outcome = dispatch(event.clone(), &worker, &reporter).await.unwrap();
        assert_eq!(outcome, TaskOutcome::Success(json!({"status": "CANCELLED"})));
    }
    let order = service.get_order(OrderId::parse(ORDER_ID).unwrap()).await.unwrap();
    assert_eq!((order.status, order.cancellation_reason.as_deref()), (OrderStatus::Cancelled, Some("PaymentDeclined")));
    assert_eq!(event_types(&store), ["OrderCancelled"]);

    let confirm = fixtures::eventbridge("orders-saga-worker", "confirm-order.json").unwrap();
    assert_eq!(dispatch(confirm, &worker, &reporter).await.unwrap().error(), Some("OrderNotPending"));
}

#[tokio::test]
async fn a_command_for_an_unknown_or_malformed_order_fails_by_name() {
    let worker = OrdersSagaWorker::new(OrderService::new(Arc::new(InMemoryOrderStore::new())));
    let reporter = InMemoryTaskReporter::new();
    let mut event = fixtures::eventbridge("orders-saga-worker", "confirm-order.json").unwrap();
    assert_eq!(dispatch(event.clone(), &worker, &reporter).await.unwrap().error(), Some("OrderNotFound"));
    event.detail["data"]["order_id"] = json!("not-a-uuid");
    assert_eq!(dispatch(event, &worker, &reporter).await.unwrap().error(), Some("InvalidCommand"));
}

type Command = aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value>;

/// The command as Step Functions sends it again on a retry: a new event id and task token.
fn retried(mut event: Command, attempt: u32) -> Command {
    event.detail["event_id"] = json!(format!("0193a3c2-6300-7000-8000-00000000000{attempt}"));
    event.detail["task_token"] = json!(format!("retry-{attempt}-token"));
    event
}

#[tokio::test]
async fn a_confirmation_or_cancellation_done_by_a_worker_that_died_before_answering_succeeds_when_retried() {
    for (fixture, status, event) in
        [("confirm-order.json", "CONFIRMED", "OrderConfirmed"), ("cancel-order.json", "CANCELLED", "OrderCancelled")]
    {
        let store = Arc::new(InMemoryOrderStore::new());
        pending_order(&store).await;
        let worker = OrdersSagaWorker::new(OrderService::new(store.clone()));
        let reporter = InMemoryTaskReporter::losing_first(1);
        let command = fixtures::eventbridge("orders-saga-worker", fixture).unwrap();
        let first = dispatch(command.clone(), &worker, &reporter).await;
        assert!(matches!(first, Err(WorkerError::Report(_))), "{first:?}");
        assert_eq!(event_types(&store), [event], "the step was done before the answer was lost");

        // Twice more, as the saga's retry and a duplicate delivery of it.
        for _ in 0..2 {
            let outcome = dispatch(retried(command.clone(), 1), &worker, &reporter).await.unwrap();
            assert_eq!(outcome, TaskOutcome::Success(json!({"status": status})), "{fixture}: found done, success");
        }
        assert_eq!(reporter.answers().len(), 2);
        assert_eq!(reporter.answers()[0].0, "retry-1-token");
        assert_eq!(event_types(&store), [event], "{fixture}: done once");
    }
}

/// What a newer producer sends: the same event with one more field in every object of its detail
/// (envelope, data, lines).
fn widened(mut event: Command) -> Command {
    event.detail = shared_core::envelope::widened(&event.detail);
    event
}

#[tokio::test]
async fn the_starter_reads_an_order_created_with_fields_it_does_not_know() {
    let starter = InMemorySagaStarter::new();
    let event = widened(fixtures::eventbridge("orders-saga-starter", "order-created.json").unwrap());
    assert_eq!(event.detail["data"]["lines"][0]["added_later"], json!("a field this consumer does not know yet"));
    let outcome = start_for_event(event, &starter, SagaSettings::default()).await.unwrap();
    assert!(matches!(outcome, StartOutcome::Started { .. }), "{outcome:?}");
    assert_eq!(starter.started()[0].1.order_id.to_string(), ORDER_ID);
}

#[tokio::test]
async fn the_worker_reads_commands_with_fields_it_does_not_know() {
    let store = Arc::new(InMemoryOrderStore::new());
    pending_order(&store).await;
    let worker = OrdersSagaWorker::new(OrderService::new(store.clone()));
    let reporter = InMemoryTaskReporter::new();
    let confirm = widened(fixtures::eventbridge("orders-saga-worker", "confirm-order.json").unwrap());
    let outcome = dispatch(confirm, &worker, &reporter).await.unwrap();
    assert_eq!(outcome, TaskOutcome::Success(json!({"status": "CONFIRMED"})));
    let cancel = widened(fixtures::eventbridge("orders-saga-worker", "cancel-order.json").unwrap());
    let outcome = dispatch(cancel, &worker, &reporter).await.unwrap();
    assert_eq!(outcome.error(), Some("OrderAlreadyConfirmed"), "read, and refused for the order's state");
}

#[tokio::test]
async fn the_saga_input_continues_the_trace_of_the_order_created_event() {
    let starter = InMemorySagaStarter::new();
    let mut event = fixtures::eventbridge("orders-saga-starter", "order-created.json").unwrap();
    event.detail["traceparent"] = json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    start_for_event(event, &starter, SagaSettings::default()).await.unwrap();
    let input = &starter.started()[0].1;
    let ours = shared_core::trace::TraceContext::parse(input.traceparent.as_deref().unwrap()).unwrap();
    assert_eq!(ours.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736", "the same trace");
    assert_ne!(ours.span_id(), "00f067aa0ba902b7", "a span of its own");
}

/// Step Functions puts an execution in the X-Ray trace of StartExecution's `traceHeader`
/// (<https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html>):
/// the saga joins the trace of the order that started it, in X-Ray as in the logs.
#[tokio::test]
async fn the_saga_execution_is_started_in_the_x_ray_trace_of_its_input() {
    use orders::adapters::stepfunctions::StepFunctionsSagaStarter;
    use orders::saga::SagaStarter;

    let recorder = InMemorySagaStarter::new();
    let mut event = fixtures::eventbridge("orders-saga-starter", "order-created.json").unwrap();
    event.detail["traceparent"] = json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    start_for_event(event, &recorder, SagaSettings::default()).await.unwrap();
    let (name, input) = recorder.started().remove(0);

    let moto = local_aws::Moto::start().await.unwrap();
    let definition = r#"{"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}"#;
    let machine = moto.create_state_machine(&local_aws::unique_name("saga"), definition).await.unwrap();
    let client = aws_sdk_sfn::Client::new(&moto.sdk_config());
    let outcome = StepFunctionsSagaStarter::new(client.clone(), &machine).start(&name, &input).await.unwrap();
    let StartOutcome::Started { execution_arn } = outcome else { panic!("{outcome:?}") };
    let execution = client.describe_execution().execution_arn(execution_arn).send().await.unwrap();
    assert_eq!(execution.trace_header(), Some("Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Sampled=1"));
}
