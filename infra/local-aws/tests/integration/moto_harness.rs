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

#[tokio::test]
async fn dynamodb_capacity_is_counted_in_on_demand_request_units() {
    use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
    let moto = Moto::start().await.unwrap();
    let table = moto.create_project_table("PaymentsTable", "usage").await.unwrap();
    let before = moto.dynamodb_usage().await.unwrap();
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config());
    let item = |pk: &str| {
        std::collections::HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk.into())),
            ("sk".to_owned(), AttributeValue::S("X".into())),
        ])
    };
    client.put_item().table_name(&table).set_item(Some(item("a"))).send().await.unwrap();
    let puts = ["b", "c"].map(|pk| {
        TransactWriteItem::builder()
            .put(Put::builder().table_name(&table).set_item(Some(item(pk))).build().unwrap())
            .build()
    });
    client.transact_write_items().set_transact_items(Some(puts.to_vec())).send().await.unwrap();
    client.get_item().table_name(&table).set_key(Some(item("a"))).consistent_read(true).send().await.unwrap();
    client.get_item().table_name(&table).set_key(Some(item("a"))).send().await.unwrap();
    let after = moto.dynamodb_usage().await.unwrap();
    assert_eq!(
        after.write_units - before.write_units,
        1.0 + 2.0 * 2.0,
        "a put, and a transaction of two items at 2 each"
    );
    assert_eq!(after.read_units - before.read_units, 1.0 + 0.5, "a strong read and an eventual one");
    assert_eq!(after.requests["TransactWriteItems"], 1);
}

#[tokio::test]
async fn every_request_is_counted_by_operation() {
    let moto = Moto::start().await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config());
    for name in ["counted-a", "counted-b"] {
        sqs.create_queue().queue_name(name).send().await.unwrap();
    }
    sqs.list_queues().send().await.unwrap();
    let counts: std::collections::BTreeMap<String, u64> =
        reqwest::get(format!("{}/_local/requests", moto.endpoint())).await.unwrap().json().await.unwrap();
    assert_eq!(counts.get("AmazonSQS.CreateQueue"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("AmazonSQS.ListQueues"), Some(&1), "{counts:?}");
}

/// The launcher serves DynamoDB from a second moto process (split.py) behind its one endpoint:
/// a table written through the endpoint is there, the memory report names both processes, and
/// the second process does not outlive a launcher that is SIGKILLed (as every test's moto is
/// when dropped).
#[tokio::test]
async fn dynamodb_runs_in_a_second_process_that_dies_with_the_launcher() {
    let moto = Moto::start().await.unwrap();
    let table = moto.create_project_table("PaymentsTable", "split").await.unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::new(&moto.sdk_config());
    let item = std::collections::HashMap::from(
        [("pk", "probe"), ("sk", "X")]
            .map(|(k, v)| (k.to_owned(), aws_sdk_dynamodb::types::AttributeValue::S(v.into()))),
    );
    dynamodb.put_item().table_name(&table).set_item(Some(item.clone())).send().await.unwrap();
    let read = dynamodb.get_item().table_name(&table).set_key(Some(item)).send().await.unwrap();
    assert!(read.item().is_some(), "the item written through the endpoint is read back");
    let held = moto.holdings().await.unwrap();
    assert_eq!(held["dynamodb"][&table]["items"], 1, "{held}");
    assert!(held["rss_mib"]["main"].as_u64() > Some(0) && held["rss_mib"]["dynamodb"].as_u64() > Some(0), "{held}");

    let launcher = moto.pid().expect("a moto we started");
    let children = std::fs::read_to_string(format!("/proc/{launcher}/task/{launcher}/children")).unwrap();
    let second: Vec<u32> = children.split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(second.len(), 1, "one DynamoDB process: {children}");
    let cmdline = std::fs::read_to_string(format!("/proc/{}/cmdline", second[0])).unwrap();
    assert!(cmdline.contains("--dynamodb-only"), "{cmdline}");
    drop(moto);
    let gone = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_or(true, |s| s.lines().any(|l| l.starts_with("State:") && l.contains('Z')))
    };
    for _ in 0..50 {
        if gone(second[0]) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the DynamoDB process {} outlived its launcher", second[0]);
}

/// A closed execution keeps only its history (compressed) and final state, not its evaluation
/// environment (moto_speedups.py): GetExecutionHistory still answers every event in order, and
/// DescribeExecution its status and output.
#[tokio::test]
async fn a_closed_execution_is_kept_compact_and_answers_as_before() {
    let moto = Moto::start().await.unwrap();
    let sfn = aws_sdk_sfn::Client::new(&moto.sdk_config());
    let definition = serde_json::json!({
        "StartAt": "One",
        "States": {
            "One": {"Type": "Pass", "Result": {"n": 1}, "Next": "Two"},
            "Two": {"Type": "Pass", "End": true}
        }
    });
    let machine = moto.create_state_machine("compact", &definition.to_string()).await.unwrap();
    let execution = sfn.start_execution().state_machine_arn(&machine).name("run-1").send().await.unwrap();
    let mut described = None;
    for _ in 0..50 {
        let d = sfn.describe_execution().execution_arn(execution.execution_arn()).send().await.unwrap();
        if d.status() != &aws_sdk_sfn::types::ExecutionStatus::Running {
            described = Some(d);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let described = described.expect("the execution closed");
    assert_eq!(described.status(), &aws_sdk_sfn::types::ExecutionStatus::Succeeded);
    assert_eq!(described.output(), Some(r#"{"n": 1}"#));
    let held = moto.holdings().await.unwrap();
    assert_eq!(held["stepfunctions"]["compact"]["kept_compact"], 1, "{held}");
    let history = sfn.get_execution_history().execution_arn(execution.execution_arn()).send().await.unwrap();
    let types: Vec<&str> = history.events().iter().map(|e| e.r#type().as_str()).collect();
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ]
    );
    let ids: Vec<i64> = history.events().iter().map(|e| e.id()).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    let entered = history.events()[1].state_entered_event_details().expect("state entered details");
    assert_eq!(entered.name(), "One");
}
