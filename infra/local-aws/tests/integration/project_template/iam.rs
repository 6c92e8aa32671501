//! Least privilege, on the template CloudFormation deploys: each function's role grants exactly
//! the actions its code calls (plus what Lambda itself does with the role: read the stream of a
//! stream trigger, write a destination queue), nothing twice, no wildcard action; nobody but the
//! state machines may publish `shop.saga` commands; the gateway may call only the routes it uses.
//! Also the public API's abuse limits and the archive without saga commands (issue #16).

use std::collections::{BTreeMap, BTreeSet};

use local_aws::project_root;
use serde_json::{Value, json};

use super::sam;

/// The AWS calls each function binary makes, read from its code path (reviewed by hand; each
/// one is also checked below to exist in the crate's code). IAM has no action of its own for
/// TransactWriteItems: each item needs its PutItem or UpdateItem (`shared::aws::dynamo`).
const CALLS: &[(&str, &[&str])] = &[
    ("orders-api", &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"]),
    ("orders-outbox-relay", &["events:PutEvents"]),
    ("orders-saga-starter", &["states:StartExecution"]),
    (
        "orders-saga-worker",
        &["dynamodb:GetItem", "dynamodb:PutItem", "states:SendTaskSuccess", "states:SendTaskFailure"],
    ),
    (
        "orders-compensation-sweeper",
        &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "states:StartExecution",
            "states:DescribeExecution",
        ],
    ),
    ("inventory-api", &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]),
    ("inventory-outbox-relay", &["events:PutEvents"]),
    (
        "inventory-saga-worker",
        &[
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "states:SendTaskSuccess",
            "states:SendTaskFailure",
        ],
    ),
    ("inventory-order-events", &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]),
    ("payments-api", &["dynamodb:GetItem"]),
    ("payments-outbox-relay", &["events:PutEvents"]),
    (
        "payments-saga-worker",
        &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "secretsmanager:GetSecretValue",
            "states:SendTaskSuccess",
            "states:SendTaskFailure",
        ],
    ),
    ("gateway-api", &["execute-api:Invoke", "states:DescribeExecution", "states:GetExecutionHistory"]),
];

/// What in Rust code makes the call (an SDK operation, or the SigV4 signer for execute-api).
fn code_of(action: &str) -> &'static [&'static str] {
    match action {
        "dynamodb:GetItem" => &[".get_item("],
        "dynamodb:PutItem" => &[".put_item(", "Put::builder("],
        "dynamodb:UpdateItem" => &[".update_item(", "Update::builder("],
        "dynamodb:Query" => &[".query("],
        "dynamodb:BatchGetItem" => &[".batch_get_item("],
        "dynamodb:ConditionCheckItem" => &["ConditionCheck::builder("],
        "events:PutEvents" => &[".put_events("],
        "states:StartExecution" => &[".start_execution("],
        "states:DescribeExecution" => &[".describe_execution("],
        "states:GetExecutionHistory" => &[".get_execution_history("],
        "states:SendTaskSuccess" => &[".send_task_success("],
        "states:SendTaskFailure" => &[".send_task_failure("],
        "secretsmanager:GetSecretValue" => &[".get_secret_value("],
        "execute-api:Invoke" => &["\"execute-api\""],
        other => panic!("no code known to call {other}: add it to code_of"),
    }
}

/// Lambda's own use of a function's role: a stream trigger's reads, a destination's writes.
const FOR_LAMBDA: &[&str] = &[
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
    "sqs:SendMessage",
];

fn rust_sources(dir: &std::path::Path, into: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_sources(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// Each statement of a role's inline policies, one per action.
fn grants<'a>(deployed: &'a Value, role: &str) -> Vec<(String, &'a Value)> {
    deployed["Resources"][role]["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().into_iter().flatten())
        .flat_map(|statement| {
            let actions = match &statement["Action"] {
                Value::Array(actions) => actions.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                Value::String(action) => vec![action.clone()],
                other => panic!("{role}: an Action of {other}"),
            };
            actions.into_iter().map(move |a| (a, statement))
        })
        .collect()
}

fn role_of(function: &Value) -> &str {
    sam::referenced(&function["Properties"]["Role"], "Arn").expect("Role: !GetAtt <role>.Arn")
}

#[test]
fn every_function_is_granted_exactly_what_its_code_calls_once() {
    let deployed = sam::translated();
    let calls: BTreeMap<&str, BTreeSet<&str>> = CALLS.iter().map(|(b, a)| (*b, a.iter().copied().collect())).collect();
    let mut seen = BTreeSet::new();
    for (id, function) in sam::of_type(&deployed, "AWS::Lambda::Function") {
        let binary = function["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        let expected = calls.get(binary).unwrap_or_else(|| panic!("{id}: add {binary}'s calls to CALLS"));
        seen.insert(binary);
        let role = role_of(function);
        let mut granted = BTreeSet::new();
        let mut pairs = BTreeSet::new();
        for (action, statement) in grants(&deployed, role) {
            assert!(!action.contains('*'), "{id}: a wildcard action {action}");
            let pair = (action.clone(), statement["Resource"].to_string());
            assert!(pairs.insert(pair), "{id}: {action} on {} is granted twice", statement["Resource"]);
            if !FOR_LAMBDA.contains(&action.as_str()) {
                granted.insert(action);
            }
        }
        let expected: BTreeSet<String> = expected.iter().map(|a| (*a).to_owned()).collect();
        let unused: Vec<_> = granted.difference(&expected).collect();
        let missing: Vec<_> = expected.difference(&granted).collect();
        assert!(unused.is_empty(), "{id} ({binary}) is granted actions its code never calls: {unused:?}");
        assert!(missing.is_empty(), "{id} ({binary}) calls what it is not granted: {missing:?}");
    }
    assert!(seen.len() >= 12, "{seen:?}");
}

#[test]
fn the_calls_listed_are_made_by_the_crates_code() {
    // CALLS cannot claim an action nobody calls: each one's SDK call is in the function's crate
    // (or in shared, which every crate uses).
    let deployed = sam::translated();
    let root = project_root();
    let mut shared = String::new();
    rust_sources(&root.join("shared/src"), &mut shared);
    for (id, function) in sam::of_type(&deployed, "AWS::Lambda::Function") {
        let binary = function["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        let code_uri = crate_of(binary);
        let mut code = shared.clone();
        rust_sources(&root.join(&code_uri).join("src"), &mut code);
        let (_, actions) = CALLS.iter().find(|(b, _)| *b == binary).unwrap();
        for action in *actions {
            assert!(
                code_of(action).iter().any(|call| code.contains(call)),
                "{id}: CALLS lists {action}, but {code_uri} makes no {:?}",
                code_of(action)
            );
        }
    }
}

/// The crate a function binary is built from, by its template CodeUri.
fn crate_of(binary: &str) -> String {
    let template = local_aws::Template::load_project().unwrap();
    template
        .resources_of_type("AWS::Serverless::Function")
        .find(|(_, r)| {
            r.metadata.get("BuildProperties").and_then(|p| p.get("Binary")).and_then(|b| b.as_str()) == Some(binary)
        })
        .and_then(|(_, r)| {
            r.properties.get("CodeUri").and_then(|c| c.as_str()).map(|c| c.trim_start_matches("./").to_owned())
        })
        .unwrap_or_else(|| panic!("no function builds {binary}"))
}

#[test]
fn only_the_state_machines_publish_saga_commands_and_each_relay_only_its_service() {
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoneventbridge.html:
    // PutEvents takes the events:source condition key (each entry's Source), see also
    // https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-conditions.html.
    let deployed = sam::translated();
    let mut roles: Vec<(String, String)> = Vec::new();
    for (_, function) in sam::of_type(&deployed, "AWS::Lambda::Function") {
        // The relay of functions/<service> publishes shop.<service> (shared_core::envelope::source_for).
        let binary = function["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        let service = crate_of(binary).trim_start_matches("functions/").to_owned();
        roles.push((role_of(function).to_owned(), format!("shop.{service}")));
    }
    for (_, machine) in sam::of_type(&deployed, "AWS::StepFunctions::StateMachine") {
        let role = sam::referenced(&machine["Properties"]["RoleArn"], "Arn").unwrap();
        roles.push((role.to_owned(), "shop.saga".to_owned()));
    }
    let machines = sam::of_type(&deployed, "AWS::StepFunctions::StateMachine").count();
    let mut publishers = 0;
    for (role, source) in roles {
        for (action, statement) in grants(&deployed, &role) {
            if action != "events:PutEvents" {
                continue;
            }
            publishers += 1;
            assert_eq!(
                statement["Condition"],
                json!({"StringEquals": {"events:source": source}}),
                "{role}: PutEvents without the events:source condition {source}"
            );
        }
    }
    assert_eq!(publishers, 3 + machines, "the three relays and the state machines publish");
    // The sources the code publishes.
    let saga = std::fs::read_to_string(project_root().join("shared/src/aws/saga.rs")).unwrap();
    assert!(saga.contains("pub const COMMAND_SOURCE: &str = \"shop.saga\";"));
    let envelope = std::fs::read_to_string(project_root().join("shared/core/src/envelope.rs")).unwrap();
    assert!(envelope.contains("format!(\"shop.{service}\")"), "relays publish shop.<service>");
    for service in ["orders", "inventory", "payments"] {
        let events =
            std::fs::read_to_string(project_root().join(format!("functions/{service}/src/events.rs"))).unwrap();
        assert!(events.contains(&format!("pub const SERVICE: &str = \"{service}\";")), "{service}");
    }
    let template = local_aws::Template::load_project().unwrap();
    for (asl, machine) in template.resources_of_type("AWS::Serverless::StateMachine") {
        let uri = machine.properties.get("DefinitionUri").and_then(|u| u.as_str()).unwrap();
        let text = std::fs::read_to_string(project_root().join(uri)).unwrap();
        let definition: Value = serde_json::from_str(&text).unwrap();
        let mut sources = BTreeSet::new();
        collect_sources(&definition, &mut sources);
        assert_eq!(sources, BTreeSet::from(["shop.saga".to_owned()]), "{asl}");
    }
}

fn collect_sources(value: &Value, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(source)) = map.get("Source") {
                into.insert(source.clone());
            }
            map.values().for_each(|v| collect_sources(v, into));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_sources(v, into)),
        _ => {}
    }
}

#[test]
fn the_gateway_may_invoke_only_the_internal_routes_it_calls() {
    let deployed = sam::translated();
    let template = local_aws::Template::load_project().unwrap();
    // Declared internal routes, as execute-api resources: <Api>/*/<METHOD>/<path, {param} as *>.
    let mut routes = BTreeSet::new();
    for (_, function) in template.resources_of_type("AWS::Serverless::Function") {
        for event in function.properties.get("Events").and_then(|e| e.as_mapping()).into_iter().flat_map(|m| m.values())
        {
            let properties = &event["Properties"];
            let Some(api) = properties.get("ApiId").and_then(local_aws::referenced) else { continue };
            if api == "GatewayHttpApi" {
                continue;
            }
            let path: Vec<String> = properties["Path"]
                .as_str()
                .unwrap()
                .split('/')
                .map(|s| if s.starts_with('{') { "*".to_owned() } else { s.to_owned() })
                .collect();
            routes.insert(format!("${{{api}}}/*/{}{}", properties["Method"].as_str().unwrap(), path.join("/")));
        }
    }
    let (_, gateway) = sam::of_type(&deployed, "AWS::Lambda::Function")
        .find(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"] == "gateway-api")
        .unwrap();
    let mut granted = BTreeSet::new();
    for (action, statement) in grants(&deployed, role_of(gateway)) {
        if action != "execute-api:Invoke" {
            continue;
        }
        for resource in statement["Resource"].as_array().unwrap() {
            let arn = resource["Fn::Sub"].as_str().unwrap();
            let prefix = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:";
            let route = arn.strip_prefix(prefix).unwrap_or_else(|| panic!("{arn}"));
            assert!(
                routes.contains(route),
                "the gateway may invoke {route}, which is no declared internal route: {routes:?}"
            );
            granted.insert(route.to_owned());
        }
    }
    // Every route the gateway's code calls (functions/gateway/src/http.rs) is granted.
    let http = std::fs::read_to_string(project_root().join("functions/gateway/src/http.rs")).unwrap();
    for (call, route) in [
        ("upstreams.orders.send(Method::POST, \"/orders\"", "${OrdersHttpApi}/*/POST/orders"),
        ("format!(\"/orders?customer_id=", "${OrdersHttpApi}/*/GET/orders"),
        ("format!(\"/orders/{id}", "${OrdersHttpApi}/*/GET/orders/*"),
        ("upstreams.inventory.get(&format!(\"/inventory/{}\"", "${InventoryHttpApi}/*/GET/inventory/*"),
        ("upstreams.inventory.send(Method::PUT", "${InventoryHttpApi}/*/PUT/inventory/*"),
        ("format!(\"/inventory/{}/restock\"", "${InventoryHttpApi}/*/POST/inventory/*/restock"),
        ("format!(\"/reservations/order/{id}\")", "${InventoryHttpApi}/*/GET/reservations/order/*"),
        ("format!(\"/payments/order/{id}\")", "${PaymentsHttpApi}/*/GET/payments/order/*"),
    ] {
        assert!(http.contains(call), "the gateway no longer calls {call}: update this list and the grant");
        assert!(granted.contains(route), "the gateway calls {route} without the grant");
    }
    assert_eq!(granted.len(), 8, "{granted:?}");
}

#[test]
fn the_public_api_is_throttled_and_the_saga_workers_keep_their_concurrency() {
    let deployed = sam::translated();
    let (_, stage) = sam::of_type(&deployed, "AWS::ApiGatewayV2::Stage")
        .find(|(_, s)| sam::referenced(&s["Properties"]["ApiId"], "Ref") == Some("GatewayHttpApi"))
        .unwrap();
    let route = &stage["Properties"]["DefaultRouteSettings"];
    assert_eq!(route["ThrottlingRateLimit"], json!({"Ref": "ThrottlingRateLimit"}));
    assert_eq!(route["ThrottlingBurstLimit"], json!({"Ref": "ThrottlingBurstLimit"}));
    let parameters = &deployed["Parameters"];
    assert_eq!(
        (&parameters["ThrottlingRateLimit"]["Default"], &parameters["ThrottlingBurstLimit"]["Default"]),
        (&json!(50), &json!(100))
    );
    let mut workers = 0;
    for (id, function) in sam::of_type(&deployed, "AWS::Lambda::Function") {
        let binary = function["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        let reserved = &function["Properties"]["ReservedConcurrentExecutions"];
        if binary.ends_with("-saga-worker") {
            workers += 1;
            assert_eq!(
                reserved,
                &json!({"Fn::If": ["ReservesSagaConcurrency", {"Ref": "SagaWorkerReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}),
                "{id}"
            );
            // A retry by Lambda would come after the task token timed out: the saga retries.
            let (_, invoke) = sam::of_type(&deployed, "AWS::Lambda::EventInvokeConfig")
                .find(|(_, c)| sam::referenced(&c["Properties"]["FunctionName"], "Ref") == Some(id))
                .unwrap();
            assert_eq!(invoke["Properties"]["MaximumRetryAttempts"], 0, "{id}");
        } else {
            assert!(reserved.is_null(), "{id}: only saga workers reserve concurrency");
        }
    }
    assert_eq!(workers, 3);
}

#[test]
fn the_archive_keeps_domain_events_but_no_saga_command() {
    let deployed = sam::translated();
    let (_, archive) = sam::of_type(&deployed, "AWS::Events::Archive").next().unwrap();
    assert_eq!(archive["Properties"]["EventPattern"], json!({"source": [{"anything-but": ["shop.saga"]}]}));
}
