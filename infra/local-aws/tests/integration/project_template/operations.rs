//! What an operator of the deployed shop is given (issue #17, item 4), checked on the template
//! CloudFormation deploys (the SAM transform's output): an alarm on every failure that needs a
//! person, all of them and SagaCompensationFailed on one SNS topic, logs that expire, and no
//! task token or personal data in the saga's logs.

use std::collections::BTreeSet;

use serde_json::Value;

use super::sam;

fn alarms<'a>(deployed: &'a Value, namespace: &'a str, metric: &'a str) -> Vec<&'a Value> {
    sam::of_type(deployed, "AWS::CloudWatch::Alarm")
        .map(|(_, a)| &a["Properties"])
        .filter(|p| p["Namespace"] == namespace && p["MetricName"] == metric)
        .collect()
}

/// The logical ids the alarms' `dimension` names (`!Ref X` or `!GetAtt X.attr`).
fn watched(alarms: &[&Value], dimension: &str) -> BTreeSet<String> {
    alarms
        .iter()
        .flat_map(|a| a["Dimensions"].as_array().into_iter().flatten())
        .filter(|d| d["Name"] == dimension)
        .filter_map(|d| {
            let v = &d["Value"];
            v.get("Ref").or_else(|| v["Fn::GetAtt"].get(0)).and_then(Value::as_str).map(str::to_owned)
        })
        .collect()
}

fn notify_the_alarm_topic(alarms: &[&Value]) {
    for alarm in alarms {
        let actions = alarm["AlarmActions"].as_array().unwrap_or_else(|| panic!("no AlarmActions: {alarm}"));
        assert!(actions.iter().any(|a| sam::referenced(a, "Ref") == Some("AlarmTopic")), "{alarm}");
        assert_eq!(alarm["TreatMissingData"], "notBreaching", "no data is no failure: {alarm}");
    }
}

fn ids(deployed: &Value, kind: &str) -> BTreeSet<String> {
    sam::of_type(deployed, kind).map(|(id, _)| id.to_owned()).collect()
}

#[test]
fn every_dead_letter_queue_alarms_on_its_first_message() {
    let deployed = sam::translated();
    let dlq = alarms(&deployed, "AWS/SQS", "ApproximateNumberOfMessagesVisible");
    assert_eq!(watched(&dlq, "QueueName"), ids(&deployed, "AWS::SQS::Queue"), "every queue is a DLQ here");
    for alarm in &dlq {
        assert_eq!(
            (alarm["Threshold"].as_f64(), alarm["ComparisonOperator"].as_str()),
            (Some(0.0), Some("GreaterThanThreshold"))
        );
        // A stream failure points at records the stream keeps 24 hours: the alarm must be quick.
        assert!(alarm["Period"].as_u64() <= Some(60) && alarm["EvaluationPeriods"] == 1, "{alarm}");
    }
    notify_the_alarm_topic(&dlq);
}

#[test]
fn relays_saga_functions_and_the_public_api_have_their_alarms() {
    let deployed = sam::translated();
    let functions = ids(&deployed, "AWS::Lambda::Function");
    for metric in ["Errors", "Throttles"] {
        let found = alarms(&deployed, "AWS/Lambda", metric);
        assert_eq!(watched(&found, "FunctionName"), functions, "a {metric} alarm per function");
        notify_the_alarm_topic(&found);
    }
    let relays: BTreeSet<String> = sam::of_type(&deployed, "AWS::Lambda::EventSourceMapping")
        .filter(|(_, m)| m["Properties"]["EventSourceArn"]["Fn::GetAtt"][1] == "StreamArn")
        .map(|(_, m)| m["Properties"]["FunctionName"]["Ref"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(relays.len(), 3, "{relays:?}");
    let lag = alarms(&deployed, "AWS/Lambda", "IteratorAge");
    assert_eq!(watched(&lag, "FunctionName"), relays, "an IteratorAge alarm per stream relay");
    notify_the_alarm_topic(&lag);
    let machines = ids(&deployed, "AWS::StepFunctions::StateMachine");
    for metric in ["ExecutionsFailed", "ExecutionsTimedOut"] {
        let found = alarms(&deployed, "AWS/States", metric);
        assert_eq!(watched(&found, "StateMachineArn"), machines, "{metric}");
        notify_the_alarm_topic(&found);
    }
    let api = alarms(&deployed, "AWS/ApiGateway", "5xx");
    assert_eq!(watched(&api, "ApiId"), BTreeSet::from(["GatewayHttpApi".to_owned()]));
    notify_the_alarm_topic(&api);
}

#[test]
fn compensation_failures_reach_the_alarm_topic_without_the_saga_state() {
    let deployed = sam::translated();
    let (id, rule) = sam::of_type(&deployed, "AWS::Events::Rule")
        .find(|(_, r)| r["Properties"]["EventPattern"]["detail-type"] == serde_json::json!(["SagaCompensationFailed"]))
        .expect("a rule on SagaCompensationFailed");
    // The detail type the state machine publishes, from its source.
    let asl =
        std::fs::read_to_string(local_aws::project_root().join("infra/statemachine/fulfilment.asl.json")).unwrap();
    assert!(asl.contains(r#""DetailType": "SagaCompensationFailed""#) && asl.contains(r#""Source": "shop.saga""#));
    assert_eq!(rule["Properties"]["EventPattern"]["source"], serde_json::json!(["shop.saga"]));
    let target = &rule["Properties"]["Targets"][0];
    assert_eq!(sam::referenced(&target["Arn"], "Ref"), Some("AlarmTopic"), "{id}");
    let paths = target["InputTransformer"]["InputPathsMap"].as_object().expect("an input transformer");
    assert!(paths.values().all(|p| !p.as_str().unwrap().contains("saga_state")), "the saga state names the customer");

    // The topic lets EventBridge publish for that rule and CloudWatch for this account's alarms.
    let (_, policy) = sam::of_type(&deployed, "AWS::SNS::TopicPolicy").next().expect("a topic policy");
    let statements = policy["Properties"]["PolicyDocument"]["Statement"].as_array().unwrap();
    let by = |service: &str| statements.iter().find(|s| s["Principal"]["Service"] == service).cloned();
    let events = by("events.amazonaws.com").expect("EventBridge may publish");
    assert_eq!(sam::referenced(&events["Condition"]["ArnEquals"]["aws:SourceArn"], "Arn"), Some(id));
    assert!(by("cloudwatch.amazonaws.com").is_some(), "CloudWatch may publish the alarms");
    // The mail subscription exists only when AlarmEmail is given.
    let (_, subscription) = sam::of_type(&deployed, "AWS::SNS::Subscription").next().expect("an email subscription");
    assert_eq!(subscription["Condition"], "HasAlarmEmail");
    assert_eq!(
        deployed["Conditions"]["HasAlarmEmail"],
        serde_json::json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]})
    );
}

#[test]
fn every_log_group_is_declared_and_expires_after_log_retention_days() {
    let deployed = sam::translated();
    let groups = ids(&deployed, "AWS::Logs::LogGroup");
    for (id, group) in sam::of_type(&deployed, "AWS::Logs::LogGroup") {
        assert_eq!(group["Properties"]["RetentionInDays"], serde_json::json!({"Ref": "LogRetentionDays"}), "{id}");
    }
    for (id, function) in sam::of_type(&deployed, "AWS::Lambda::Function") {
        let group = &function["Properties"]["LoggingConfig"]["LogGroup"];
        let group =
            sam::referenced(group, "Ref").unwrap_or_else(|| panic!("{id} names no declared log group: {group}"));
        assert!(groups.contains(group), "{id}: {group}");
        assert_eq!(function["Properties"]["LoggingConfig"]["LogFormat"], "JSON", "{id} keeps the Globals' JSON logs");
    }
    let retention = &deployed["Parameters"]["LogRetentionDays"];
    assert_eq!(retention["Default"], 30);
    // CloudWatch Logs' valid values:
    // https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-logs-loggroup.html
    let valid =
        [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];
    assert_eq!(retention["AllowedValues"], serde_json::json!(valid));

    // The saga logs errors only, without execution data (task tokens, customers' orders).
    for (id, machine) in sam::of_type(&deployed, "AWS::StepFunctions::StateMachine") {
        let logging = &machine["Properties"]["LoggingConfiguration"];
        assert_eq!(logging["Level"], "ERROR", "{id}");
        assert_eq!(logging["IncludeExecutionData"], false, "{id}");
        let arn = &logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"];
        assert!(sam::referenced(arn, "Arn").is_some_and(|g| groups.contains(g)), "{id}: {arn}");
    }
    // The public API's access log.
    let (_, stage) = sam::of_type(&deployed, "AWS::ApiGatewayV2::Stage")
        .find(|(_, s)| sam::referenced(&s["Properties"]["ApiId"], "Ref") == Some("GatewayHttpApi"))
        .expect("the public API's stage");
    let access = &stage["Properties"]["AccessLogSettings"];
    assert!(sam::referenced(&access["DestinationArn"], "Arn").is_some_and(|g| groups.contains(g)), "{access}");
    let format = access["Format"].as_str().unwrap();
    assert!(!format.contains("sourceIp") && !format.contains("Authorization"), "no personal data: {format}");
    assert_eq!(ids(&deployed, "AWS::CloudWatch::Dashboard").len(), 1, "one dashboard");
}

/// What the dashboard plots for `(namespace, metric)`: the logical ids its rows name
/// (`${X}` or `${X.Attribute}`) in that metric's dimension values.
fn plotted(dashboard: &Value, namespace: &str, metric: &str) -> BTreeSet<String> {
    let rows =
        dashboard["widgets"].as_array().unwrap().iter().flat_map(|w| w["properties"]["metrics"].as_array().unwrap());
    rows.filter(|row| row[0] == namespace && row[1] == metric)
        .flat_map(|row| row.as_array().unwrap().iter().filter_map(Value::as_str))
        .filter_map(|s| s.strip_prefix("${")?.strip_suffix('}').map(|id| id.split('.').next().unwrap().to_owned()))
        .collect()
}

/// One dashboard shows every dead-letter queue, every function's errors and throttles, both
/// state machines' executions, and the shop's business metrics (`shared::metrics`, whose own
/// test checks that every metric it emits is plotted).
#[test]
fn the_dashboard_shows_every_queue_function_and_state_machine() {
    let deployed = sam::translated();
    let (_, dashboard) = sam::of_type(&deployed, "AWS::CloudWatch::Dashboard").next().expect("a dashboard");
    let body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"].as_str().expect("a !Sub body");
    let dashboard: Value = serde_json::from_str(body).expect("the body is JSON");
    assert_eq!(plotted(&dashboard, "AWS/SQS", "ApproximateNumberOfMessagesVisible"), ids(&deployed, "AWS::SQS::Queue"));
    let functions = ids(&deployed, "AWS::Lambda::Function");
    assert_eq!(plotted(&dashboard, "AWS/Lambda", "Errors"), functions);
    assert_eq!(plotted(&dashboard, "AWS/Lambda", "Throttles"), functions);
    let machines = ids(&deployed, "AWS::StepFunctions::StateMachine");
    assert_eq!(machines.len(), 2, "{machines:?}");
    for metric in ["ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut"] {
        assert_eq!(plotted(&dashboard, "AWS/States", metric), machines, "{metric}");
    }
}
