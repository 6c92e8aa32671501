//! The moto harness: it starts a usable, configured moto, and says how to fix a missing one.

use local_aws::{Error, Moto};

#[tokio::test]
async fn a_missing_python_is_reported_with_the_way_to_install_it() {
    let Err(err) = Moto::start_with("/nonexistent/.venv/bin/python".into()).await else {
        panic!("moto cannot start without its Python");
    };
    assert!(matches!(err, Error::PythonMissing { tool: "moto", .. }));
    assert!(err.to_string().contains("make setup"), "{err}");
}

#[tokio::test]
async fn a_python_without_moto_fails_fast_with_the_hint() {
    let Err(err) = Moto::start_with("/bin/false".into()).await else { panic!("/bin/false is no moto") };
    let message = err.to_string();
    assert!(message.contains("make setup") && message.contains("exited"), "{message}");
}

#[tokio::test]
async fn moto_runs_step_functions_for_real_and_serves_the_aws_apis() {
    let moto = Moto::start().await.unwrap();
    assert!(moto.endpoint().starts_with("http://127.0.0.1:"));
    // With execution turned on (before any machine exists), a Pass state really runs and its
    // result is the execution's output; otherwise moto would never finish the execution.
    let sfn = aws_sdk_sfn::Client::new(&moto.sdk_config());
    let definition = serde_json::json!({
        "StartAt": "Hello",
        "States": {"Hello": {"Type": "Pass", "Result": {"ran": true}, "End": true}}
    });
    let machine = sfn
        .create_state_machine()
        .name("harness")
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/harness")
        .send()
        .await
        .unwrap();
    let execution =
        sfn.start_execution().state_machine_arn(machine.state_machine_arn()).name("run-1").send().await.unwrap();
    let mut output = None;
    for _ in 0..50 {
        let described = sfn.describe_execution().execution_arn(execution.execution_arn()).send().await.unwrap();
        if described.status() == &aws_sdk_sfn::types::ExecutionStatus::Succeeded {
            output = described.output().map(str::to_owned);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let output: serde_json::Value = serde_json::from_str(&output.expect("the execution succeeded")).unwrap();
    assert_eq!(output, serde_json::json!({"ran": true}));
    let bus = moto.create_bus("harness-bus").await.unwrap();
    let events = aws_sdk_eventbridge::Client::new(&moto.sdk_config());
    let described = events.describe_event_bus().name(&bus).send().await.unwrap();
    assert_eq!(described.name(), Some("harness-bus"));
}
