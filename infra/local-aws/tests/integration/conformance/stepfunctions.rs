//! Step Functions: callback tasks through EventBridge, task tokens per attempt, timeouts,
//! Retry (JitterStrategy, MaxDelaySeconds), Catch, named executions.

use std::time::{Duration, Instant};

use aws_sdk_eventbridge::types::Target;
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType};
use serde_json::{Value, json};

use super::support::*;

/// A bus whose `conf.saga` events reach a queue, and a state machine on it.
struct Saga {
    sfn: aws_sdk_sfn::Client,
    sqs: aws_sdk_sqs::Client,
    queue: String,
    bus: String,
}

impl Saga {
    async fn new(moto: &local_aws::Moto) -> Self {
        let config = config(moto);
        let sqs = aws_sdk_sqs::Client::new(&config);
        let events = aws_sdk_eventbridge::Client::new(&config);
        let bus = moto.create_bus(&local_aws::unique_name("saga")).await.unwrap();
        let (queue, arn) = queue(&sqs, &local_aws::unique_name("commands")).await;
        let pattern = json!({"source": ["conf.saga"]});
        events
            .put_rule()
            .event_bus_name(&bus)
            .name("commands")
            .event_pattern(pattern.to_string())
            .send()
            .await
            .unwrap();
        events
            .put_targets()
            .event_bus_name(&bus)
            .rule("commands")
            .targets(Target::builder().id("queue").arn(arn).build().unwrap())
            .send()
            .await
            .unwrap();
        Self { sfn: aws_sdk_sfn::Client::new(&config), sqs, queue, bus }
    }

    /// A `.waitForTaskToken` task putting a `conf.saga` command with its token on the bus.
    fn task(&self, command: &str, extra: Value) -> Value {
        let mut task = json!({
            "Type": "Task",
            "Resource": "arn:aws:states:::events:putEvents.waitForTaskToken",
            "Parameters": {"Entries": [{
                "EventBusName": self.bus,
                "Source": "conf.saga",
                "DetailType": command,
                "Detail": {"token.$": "$$.Task.Token", "attempt.$": "$$.State.RetryCount", "order.$": "$.order"}
            }]}
        });
        task.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        task
    }

    async fn machine(&self, moto: &local_aws::Moto, definition: Value) -> String {
        moto.create_state_machine(&local_aws::unique_name("machine"), &definition.to_string()).await.unwrap()
    }

    async fn start(&self, machine: &str, name: &str, input: Value) -> String {
        let started =
            self.sfn.start_execution().state_machine_arn(machine).name(name).input(input.to_string()).send().await;
        started.unwrap().execution_arn
    }

    /// The next command's detail, within `within`.
    async fn command(&self, within: Duration) -> Value {
        let bodies = receive(&self.sqs, &self.queue, 1, within).await;
        assert_eq!(bodies.len(), 1, "one command within {within:?}");
        serde_json::from_str::<Value>(&bodies[0]).unwrap()["detail"].clone()
    }

    async fn succeed(&self, token: &Value, output: Value) -> Result<(), String> {
        let sent =
            self.sfn.send_task_success().task_token(token.as_str().unwrap()).output(output.to_string()).send().await;
        sent.map(|_| ()).map_err(|e| e.into_service_error().meta().code().unwrap_or("?").to_owned())
    }

    async fn fail(&self, token: &Value, error: &str, cause: &str) {
        let token = token.as_str().unwrap();
        self.sfn.send_task_failure().task_token(token).error(error).cause(cause).send().await.unwrap();
    }

    async fn finished(&self, execution: &str, within: Duration) -> DescribeExecutionOutput {
        let deadline = Instant::now() + within;
        loop {
            let described = self.sfn.describe_execution().execution_arn(execution).send().await.unwrap();
            if described.status() != &ExecutionStatus::Running {
                return described;
            }
            assert!(Instant::now() < deadline, "{execution} still running after {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn history(&self, execution: &str) -> Vec<HistoryEvent> {
        let history = self.sfn.get_execution_history().execution_arn(execution).max_results(1000).send().await;
        history.unwrap().events().to_vec()
    }
}

fn output(described: &DescribeExecutionOutput) -> Value {
    serde_json::from_str(described.output().expect("an output")).unwrap()
}

/// Seconds of each event of `kind` after the nearest earlier event of `since`.
fn gaps(history: &[HistoryEvent], since: &HistoryEventType, kind: &HistoryEventType) -> Vec<f64> {
    let mut last = None;
    let mut out = Vec::new();
    for event in history {
        let at = event.timestamp().as_secs_f64();
        if event.r#type() == since {
            last = Some(at);
        } else if event.r#type() == kind
            && let Some(start) = last.take()
        {
            out.push(at - start);
        }
    }
    out
}

// https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token
// https://docs.aws.amazon.com/step-functions/latest/dg/connect-eventbridge.html
// https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html
// https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskFailure.html
// https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html (Catch on a
// custom error name; an uncaught one fails the execution with it)
#[tokio::test]
async fn callback_tasks_are_answered_with_success_or_failure_and_caught() {
    let moto = moto().await;
    let saga = Saga::new(&moto).await;
    let definition = json!({
        "StartAt": "Reserve",
        "States": {
            "Reserve": saga.task("Reserve", json!({"ResultPath": "$.reservation", "Next": "Charge"})),
            "Charge": saga.task("Charge", json!({"ResultPath": "$.payment", "End": true,
                "Catch": [{"ErrorEquals": ["PaymentDeclined"], "ResultPath": "$.error", "Next": "Declined"}]})),
            "Declined": {"Type": "Pass", "End": true}
        }
    });
    let machine = saga.machine(&moto, definition).await;
    let second = Duration::from_secs(5);

    let ok = saga.start(&machine, "ok", json!({"order": "o1"})).await;
    let reserve = saga.command(second).await;
    assert_eq!(reserve["order"], "o1");
    saga.succeed(&reserve["token"], json!({"total": 42})).await.unwrap();
    let charge = saga.command(second).await;
    assert_ne!(charge["token"], reserve["token"], "each task has its own token");
    saga.succeed(&charge["token"], json!({"charged": true})).await.unwrap();
    let done = saga.finished(&ok, second).await;
    assert_eq!(done.status(), &ExecutionStatus::Succeeded);
    assert_eq!(output(&done), json!({"order": "o1", "reservation": {"total": 42}, "payment": {"charged": true}}));

    let declined = saga.start(&machine, "declined", json!({"order": "o2"})).await;
    saga.succeed(&saga.command(second).await["token"], json!({"total": 1})).await.unwrap();
    saga.fail(&saga.command(second).await["token"], "PaymentDeclined", "card refused").await;
    let done = saga.finished(&declined, second).await;
    assert_eq!(done.status(), &ExecutionStatus::Succeeded, "caught");
    assert_eq!(output(&done)["error"], json!({"Error": "PaymentDeclined", "Cause": "card refused"}));

    let failed = saga.start(&machine, "failed", json!({"order": "o3"})).await;
    saga.fail(&saga.command(second).await["token"], "OutOfStock", "none left").await;
    let done = saga.finished(&failed, second).await;
    assert_eq!(done.status(), &ExecutionStatus::Failed, "not caught");
    assert_eq!(done.error(), Some("OutOfStock"));
    assert_eq!(done.cause(), Some("none left"));
}

// https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html (a retry is a
// new attempt of the task) and
// https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token:
// each attempt of a callback task has its own task token, and its own timeout
// (TimeoutSecondsPath, https://docs.aws.amazon.com/step-functions/latest/dg/state-task.html).
// https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html:
// TaskTimedOut, "the task token has either expired or the task associated with the token has
// already been closed": an earlier attempt's token is refused.
#[tokio::test]
async fn each_retry_attempt_gets_a_new_token_and_its_full_timeout() {
    let moto = moto().await;
    let saga = Saga::new(&moto).await;
    let retry = json!({"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1.0});
    let definition = json!({
        "StartAt": "Wait",
        "States": {"Wait": saga.task("Wait", json!({
            "TimeoutSecondsPath": "$.settings.timeout", "ResultPath": "$.result", "Retry": [retry], "End": true}))}
    });
    let machine = saga.machine(&moto, definition).await;
    let execution = saga.start(&machine, "retried", json!({"order": "o1", "settings": {"timeout": 1}})).await;
    let within = Duration::from_secs(5);
    let first = saga.command(within).await;
    let second = saga.command(within).await;
    assert_eq!((first["attempt"].as_i64(), second["attempt"].as_i64()), (Some(0), Some(1)));
    assert_ne!(first["token"], second["token"], "a retry attempt has a new token");
    assert_eq!(saga.succeed(&first["token"], json!({})).await, Err("TaskTimedOut".to_owned()), "the old one is closed");
    let third = saga.command(within).await;
    assert_eq!(third["attempt"].as_i64(), Some(2));
    assert!(third["token"] != first["token"] && third["token"] != second["token"]);
    assert_eq!(saga.succeed(&second["token"], json!({})).await, Err("TaskTimedOut".to_owned()));
    saga.succeed(&third["token"], json!({"ok": true})).await.unwrap();
    let done = saga.finished(&execution, within).await;
    assert_eq!(done.status(), &ExecutionStatus::Succeeded);
    assert_eq!(output(&done)["result"], json!({"ok": true}), "answered by the attempt's own token");
    assert!(saga.succeed(&third["token"], json!({})).await.is_err(), "a token answers once");

    let history = saga.history(&execution).await;
    let waited = gaps(&history, &HistoryEventType::TaskStarted, &HistoryEventType::TaskTimedOut);
    assert_eq!(waited.len(), 2, "two attempts timed out: {waited:?}");
    assert!(waited.iter().all(|s| *s >= 0.9), "each attempt waited its full 1 s timeout: {waited:?}");
}

// https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
// (MaxDelaySeconds caps the interval; JitterStrategy FULL randomises it between 0 and the
// computed interval; Catch takes over when the retries are exhausted).
#[tokio::test]
async fn retry_max_delay_and_full_jitter_are_applied() {
    let moto = moto().await;
    let saga = Saga::new(&moto).await;
    let attempts = 6;
    let retry = json!({"ErrorEquals": ["Transient"], "IntervalSeconds": 3, "BackoffRate": 2.0,
        "MaxAttempts": attempts, "MaxDelaySeconds": 1, "JitterStrategy": "FULL"});
    let definition = json!({
        "StartAt": "Flaky",
        "States": {
            "Flaky": saga.task("Flaky", json!({"Retry": [retry], "End": true,
                "Catch": [{"ErrorEquals": ["Transient"], "ResultPath": "$.error", "Next": "GaveUp"}]})),
            "GaveUp": {"Type": "Pass", "End": true}
        }
    });
    let machine = saga.machine(&moto, definition).await;
    let execution = saga.start(&machine, "flaky", json!({"order": "o1"})).await;
    for attempt in 0..=attempts {
        let command = saga.command(Duration::from_secs(4)).await;
        assert_eq!(command["attempt"].as_i64(), Some(attempt));
        saga.fail(&command["token"], "Transient", "try again").await;
    }
    let done = saga.finished(&execution, Duration::from_secs(5)).await;
    assert_eq!(done.status(), &ExecutionStatus::Succeeded, "caught after the last retry");
    assert_eq!(output(&done)["error"]["Error"], "Transient");
    let delays = gaps(&saga.history(&execution).await, &HistoryEventType::TaskFailed, &HistoryEventType::TaskScheduled);
    assert_eq!(delays.len(), attempts as usize, "{delays:?}");
    assert!(delays.iter().all(|s| *s <= 1.25), "capped at MaxDelaySeconds 1 (not 3, 6, ...): {delays:?}");
    // Full jitter: uniform in [0, 1] s; all six above 0.8 s has a chance of 0.2^6 (6e-5).
    assert!(delays.iter().any(|s| *s < 0.8), "jittered: {delays:?}");
}

// https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html
// (same name and input while open: success with the same execution; different input:
// ExecutionAlreadyExists; once closed: ExecutionAlreadyExists whatever the input).
#[tokio::test]
async fn named_executions_are_unique() {
    let moto = moto().await;
    let saga = Saga::new(&moto).await;
    let definition = json!({"StartAt": "Reserve", "States": {"Reserve": saga.task("Reserve", json!({"End": true}))}});
    let machine = saga.machine(&moto, definition).await;
    let input = json!({"order": "o1"});
    let first = saga.start(&machine, "order-o1", input.clone()).await;
    assert_eq!(saga.start(&machine, "order-o1", input.clone()).await, first, "idempotent while open");
    let start = |input: Value| {
        saga.sfn.start_execution().state_machine_arn(&machine).name("order-o1").input(input.to_string()).send()
    };
    let code = |r: Result<_, aws_sdk_sfn::error::SdkError<_>>| {
        r.map(|_| ()).map_err(
            |e: aws_sdk_sfn::error::SdkError<aws_sdk_sfn::operation::start_execution::StartExecutionError>| {
                e.into_service_error().meta().code().unwrap_or("?").to_owned()
            },
        )
    };
    assert_eq!(code(start(json!({"order": "other"})).await), Err("ExecutionAlreadyExists".to_owned()));
    saga.succeed(&saga.command(Duration::from_secs(5)).await["token"], json!({})).await.unwrap();
    assert_eq!(saga.finished(&first, Duration::from_secs(5)).await.status(), &ExecutionStatus::Succeeded);
    assert_eq!(code(start(input).await), Err("ExecutionAlreadyExists".to_owned()), "closed: never reused");
}

// https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html
// (`traceHeader`: "If both sources are provided, Step Functions will use the header value
// (preferred) over the value in the request body") and API_DescribeExecution.html (`traceHeader`).
#[tokio::test]
async fn an_execution_keeps_the_trace_header_it_was_started_with() {
    let moto = moto().await;
    let definition = r#"{"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}"#;
    let machine = moto.create_state_machine(&local_aws::unique_name("traced"), definition).await.unwrap();
    let sfn = aws_sdk_sfn::Client::new(&config(&moto));
    let body = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";
    let header = "Root=1-6759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let start = |name: &str| sfn.start_execution().state_machine_arn(&machine).name(name).trace_header(body);
    let from_body = start("from-body").send().await.unwrap().execution_arn;
    let from_both = start("from-both")
        .customize()
        .mutate_request(move |request| {
            request.headers_mut().insert("X-Amzn-Trace-Id", header);
        })
        .send()
        .await
        .unwrap()
        .execution_arn;
    let untraced = sfn.start_execution().state_machine_arn(&machine).name("untraced").send().await.unwrap();
    let trace_of = |arn: String| {
        let sfn = sfn.clone();
        async move { sfn.describe_execution().execution_arn(arn).send().await.unwrap().trace_header }
    };
    assert_eq!(trace_of(from_body).await.as_deref(), Some(body));
    assert_eq!(trace_of(from_both).await.as_deref(), Some(header), "the HTTP header wins");
    assert_eq!(trace_of(untraced.execution_arn).await, None);
}
