//! Saga worker plumbing: what reaches the handler, and what the saga is told when a command is
//! malformed.

use async_trait::async_trait;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::{Value, json};
use shared::aws::saga::{
    CommandHandler, INVALID_COMMAND, InMemoryTaskReporter, SagaCommand, TaskOutcome, WorkerError, dispatch,
};

/// Echoes the command's data as its result.
struct Echo;

#[async_trait]
impl CommandHandler for Echo {
    async fn handle(&self, command: &SagaCommand) -> TaskOutcome {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Data {
            order_id: String,
        }
        match command.data_as::<Data>() {
            Ok(_) => TaskOutcome::Success(command.data.clone()),
            Err(outcome) => outcome,
        }
    }
}

fn event(detail_type: &str, detail: Value) -> EventBridgeEvent<Value> {
    serde_json::from_value(json!({
        "version": "0", "id": "e-1", "detail-type": detail_type, "source": "shop.saga",
        "time": "2026-11-27T10:00:00Z", "region": "us-east-1", "resources": [], "detail": detail,
    }))
    .unwrap()
}

fn command(event_type: &str, data: Value) -> Value {
    json!({
        "event_id": "6f1c2d3e-4b5a-4c6d-8e7f-000000000001", "event_type": event_type, "aggregate_id": "o-1",
        // moto and Step Functions send $$.State.EnteredTime with microseconds and an offset.
        "occurred_at": "2026-11-27T10:00:00.123456+00:00", "correlation_id": "c-1", "version": 1,
        "task_token": "token-1", "data": data,
    })
}

#[tokio::test]
async fn a_command_reaches_its_handler_and_the_answer_goes_to_its_token() {
    let reporter = InMemoryTaskReporter::new();
    let outcome = dispatch(event("DoIt", command("DoIt", json!({"order_id": "o-1"}))), &Echo, &reporter).await.unwrap();
    assert_eq!(outcome, TaskOutcome::Success(json!({"order_id": "o-1"})));
    assert_eq!(reporter.answers(), [("token-1".to_owned(), outcome)]);
}

#[tokio::test]
async fn bad_data_is_answered_as_an_invalid_command_naming_the_field() {
    let reporter = InMemoryTaskReporter::new();
    let outcome = dispatch(event("DoIt", command("DoIt", json!({"order": 1}))), &Echo, &reporter).await.unwrap();
    let TaskOutcome::Failure { error, cause } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(error, INVALID_COMMAND);
    assert!(cause.contains("order_id"), "{cause}");
    assert_eq!(reporter.answers().len(), 1);
}

#[tokio::test]
async fn a_broken_envelope_with_a_token_is_answered_and_one_without_goes_to_the_dlq() {
    let reporter = InMemoryTaskReporter::new();
    let mut broken = command("DoIt", json!({"order_id": "o-1"}));
    broken["version"] = json!("one");
    let outcome = dispatch(event("DoIt", broken.clone()), &Echo, &reporter).await.unwrap();
    assert_eq!(outcome.error(), Some(INVALID_COMMAND));

    broken.as_object_mut().unwrap().remove("task_token");
    let err = dispatch(event("DoIt", broken), &Echo, &reporter).await.unwrap_err();
    assert!(matches!(err, WorkerError::NotACommand { .. }), "{err}");
    assert_eq!(reporter.answers().len(), 1, "nobody to answer without a token");
}

#[tokio::test]
async fn a_detail_type_that_disagrees_with_the_envelope_is_refused() {
    let reporter = InMemoryTaskReporter::new();
    let outcome =
        dispatch(event("Other", command("DoIt", json!({"order_id": "o-1"}))), &Echo, &reporter).await.unwrap();
    assert_eq!(outcome.error(), Some(INVALID_COMMAND));
    let mut foreign = event("DoIt", command("DoIt", json!({"order_id": "o-1"})));
    foreign.source = "shop.orders".into();
    assert!(matches!(dispatch(foreign, &Echo, &reporter).await, Err(WorkerError::NotACommand { .. })));
}

/// Answers with the `traceparent` its step runs in, as the events it publishes would carry.
struct TraceEcho;

#[async_trait]
impl CommandHandler for TraceEcho {
    async fn handle(&self, _: &SagaCommand) -> TaskOutcome {
        TaskOutcome::Success(json!(shared_core::trace::current_traceparent()))
    }
}

#[tokio::test]
async fn a_step_runs_as_a_new_span_of_the_commands_trace_and_a_broken_traceparent_starts_a_new_one() {
    let reporter = InMemoryTaskReporter::new();
    let mut detail = command("DoIt", json!({}));
    detail["traceparent"] = json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    let TaskOutcome::Success(seen) = dispatch(event("DoIt", detail.clone()), &TraceEcho, &reporter).await.unwrap()
    else {
        panic!("the step failed")
    };
    let seen = shared_core::trace::TraceContext::parse(seen.as_str().unwrap()).unwrap();
    assert_eq!(seen.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(seen.span_id(), "00f067aa0ba902b7");

    detail["traceparent"] = json!("not a traceparent");
    let outcome = dispatch(event("DoIt", detail), &TraceEcho, &reporter).await.unwrap();
    let TaskOutcome::Success(seen) = outcome else { panic!("a broken traceparent failed the command: {outcome:?}") };
    let seen = shared_core::trace::TraceContext::parse(seen.as_str().unwrap()).unwrap();
    assert_ne!(seen.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
}
