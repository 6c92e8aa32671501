//! The local system end to end: started from the project's template, driven only over HTTP like
//! a client would, with orders ending CONFIRMED or CANCELLED as expected and the three tables
//! agreeing. Also: routes, rules and tables come from the template, and a busy port is refused.

use std::time::{Duration, Instant};

use local_host::{Host, HostConfig, Physical};
use serde_json::{Value, json};

async fn host() -> Host {
    Host::start(HostConfig { http_port: 0, ..HostConfig::default() })
        .await
        .expect("the local system starts (moto is installed by `make setup`)")
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn order(&self, customer: &str, sku: &str, quantity: u32, payment_method: &str) -> String {
        let body = json!({"customer_id": customer, "payment_method": payment_method,
                          "items": [{"sku": sku, "quantity": quantity}]});
        let (status, order) = self.call(reqwest::Method::POST, "/orders", Some(body)).await;
        assert_eq!(status, 201, "{order}");
        order["id"].as_str().unwrap().to_owned()
    }

    /// Polls the order until it leaves PENDING.
    async fn final_status(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, order) = self.call(reqwest::Method::GET, &format!("/orders/{id}"), None).await;
            assert_eq!(status, 200, "{order}");
            if order["status"] != "PENDING" {
                return order;
            }
            assert!(Instant::now() < deadline, "order {id} still pending");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test]
async fn orders_placed_over_http_end_confirmed_or_cancelled_and_the_three_tables_agree() {
    let host = host().await;
    let client = Client { http: reqwest::Client::new(), base: host.base_url() };
    let put =
        |sku: &str| json!({"name": sku, "price": {"amount_minor": 900, "currency": "EUR"}, "low_stock_threshold": 1});
    for (sku, units) in [("SKU-TEA", 5), ("SKU-RARE", 1)] {
        let (status, _) = client.call(reqwest::Method::PUT, &format!("/inventory/{sku}"), Some(put(sku))).await;
        assert_eq!(status, 200);
        let restock = json!({"restock_id": "initial", "quantity": units});
        let (status, _) = client.call(reqwest::Method::POST, &format!("/inventory/{sku}/restock"), Some(restock)).await;
        assert_eq!(status, 200);
    }

    let happy = client.order("cust-1", "SKU-TEA", 2, "pm_card_visa").await;
    let short = client.order("cust-2", "SKU-RARE", 3, "pm_card_visa").await;
    let declined = client.order("cust-3", "SKU-TEA", 1, "pm_card_visa_chargeDeclined").await;

    let order = client.final_status(&happy).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    let order = client.final_status(&short).await;
    assert_eq!(
        (order["status"].as_str(), order["cancellation_reason"].as_str()),
        (Some("CANCELLED"), Some("InsufficientStock"))
    );
    let order = client.final_status(&declined).await;
    assert_eq!(
        (order["status"].as_str(), order["cancellation_reason"].as_str()),
        (Some("CANCELLED"), Some("PaymentDeclined"))
    );
    for id in [&happy, &short, &declined] {
        host.wait_for_saga(id, Duration::from_secs(30)).await.unwrap();
    }

    // Each service's own view, through its own API.
    let (_, payment) = client.get(&format!("/payments/order/{happy}")).await;
    assert_eq!(
        (payment["status"].as_str(), payment["amount"]["amount_minor"].as_u64()),
        (Some("CAPTURED"), Some(1800))
    );
    let (_, reservation) = client.get(&format!("/reservations/order/{happy}")).await;
    assert_eq!(reservation["status"], "COMMITTED");
    let (status, _) = client.get(&format!("/payments/order/{short}")).await;
    assert_eq!(status, 404, "an order without stock is never charged");
    let (_, reservation) = client.get(&format!("/reservations/order/{short}")).await;
    assert_eq!(reservation["status"], "REJECTED");
    let (_, payment) = client.get(&format!("/payments/order/{declined}")).await;
    assert_eq!(payment["status"], "DECLINED");
    let (_, reservation) = client.get(&format!("/reservations/order/{declined}")).await;
    assert_eq!(reservation["status"], "RELEASED");
    let (_, tea) = client.get("/inventory/SKU-TEA").await;
    assert_eq!(tea["available"], 3, "2 sold, 1 released");
    let (_, rare) = client.get("/inventory/SKU-RARE").await;
    assert_eq!(rare["available"], 1);

    // The public API's view of the same order, gathered in parallel by the gateway.
    let (status, view) = client.get(&format!("/api/orders/{happy}")).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["order"]["status"], "CONFIRMED");
    assert_eq!(view["payment"]["status"], "CAPTURED");
    assert_eq!(view["reservation"]["status"], "COMMITTED");
    assert_eq!(view["saga"], json!({"status": "SUCCEEDED", "step": "ConfirmOrder"}));
    assert_eq!(view["degraded"], json!([]));
    let (_, view) = client.get(&format!("/api/orders/{declined}")).await;
    assert_eq!(view["saga"], json!({"status": "SUCCEEDED", "step": "CancelOrder"}));
    let (_, product) = client.get("/api/products/SKU-TEA").await;
    assert_eq!(product["available"], 3);

    // And the tables themselves: one order, one reservation, at most one payment per order.
    let dynamodb = aws_sdk_dynamodb::Client::new(&host.sdk);
    for (table, entity, expected) in
        [("OrdersTable", "ORDER", 3), ("InventoryTable", "RESERVATION", 3), ("PaymentsTable", "PAYMENT", 2)]
    {
        let Physical::Table { name, .. } = host.resolver.physical(table).unwrap().clone() else { panic!("{table}") };
        let items = dynamodb.scan().table_name(name).send().await.unwrap();
        let count = items
            .items()
            .iter()
            .filter(|i| i.get("entity").and_then(|e| e.as_s().ok()).is_some_and(|e| e == entity))
            .count();
        assert_eq!(count, expected, "{entity} items in {table}");
    }
    let failures: Vec<_> = host.invocations().into_iter().filter(|i| i.outcome.is_err()).collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn a_second_local_system_on_a_busy_port_fails_with_a_clear_message() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let Err(err) = Host::start(HostConfig { http_port: port, ..HostConfig::default() }).await else {
        panic!("the port is taken")
    };
    let message = err.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")) && message.contains("--port"), "{message}");
}

/// The project's template with a few changes, written beside the real one (paths such as
/// `DefinitionUri` are relative to the project root).
fn edited_template(edit: impl FnOnce(&mut String)) -> std::path::PathBuf {
    let root = local_aws::project_root();
    let mut text = std::fs::read_to_string(root.join("template.yaml")).unwrap();
    edit(&mut text);
    let path = std::env::temp_dir().join(format!("template-{}.yaml", local_aws::unique_name("edited")));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn routes_rules_and_tables_come_from_the_template_and_nothing_else() {
    // Take the list-orders route out, add a table, and give the order-events consumer one more rule.
    let path = edited_template(|text| {
        let route = "        ListOrders:\n          Type: HttpApi\n          Properties:\n            ApiId: !Ref OrdersHttpApi\n            Method: GET\n            Path: /orders\n";
        assert!(text.contains(route), "the template's ListOrders route moved; update this test");
        *text = text.replace(route, "");
        *text = text.replacen(
            "Resources:\n",
            "Resources:\n  AuditTable:\n    Type: AWS::DynamoDB::Table\n    Properties:\n      BillingMode: PAY_PER_REQUEST\n      AttributeDefinitions:\n        - AttributeName: pk\n          AttributeType: S\n      KeySchema:\n        - AttributeName: pk\n          KeyType: HASH\n\n",
            1,
        );
        *text = text.replace(
            "        OrderOutcomes:\n          Type: EventBridgeRule\n",
            "        StockWatch:\n          Type: EventBridgeRule\n          Properties:\n            EventBusName: !Ref ShopEventBus\n            Pattern:\n              source: [shop.inventory]\n              detail-type: [StockLow]\n        OrderOutcomes:\n          Type: EventBridgeRule\n",
        );
    });
    let host =
        Host::start(HostConfig { http_port: 0, template: Some(path.clone()), ..HostConfig::default() }).await.unwrap();
    std::fs::remove_file(path).unwrap();

    let http = reqwest::Client::new();
    let listed = http.get(format!("{}/orders?customer_id=cust-1", host.base_url())).send().await.unwrap();
    assert_eq!(listed.status(), 404, "the router knows GET /orders, but the template no longer routes it");
    let body: Value = listed.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("template.yaml"));
    assert!(!host.routes.iter().any(|(m, p, _)| m == "GET" && p == "/orders"));
    let order =
        http.get(format!("{}/orders/0193a3c2-5f00-7000-8000-00000000c0de", host.base_url())).send().await.unwrap();
    assert_eq!(order.status(), 404, "GET /orders/{{id}} is still routed: the order does not exist");
    assert_eq!(order.headers()["content-type"], "application/problem+json");

    let Physical::Table { name, .. } = host.resolver.physical("AuditTable").unwrap().clone() else { panic!() };
    let tables = aws_sdk_dynamodb::Client::new(&host.sdk).list_tables().send().await.unwrap();
    assert!(tables.table_names().contains(&name), "the new table exists locally");

    let Physical::Bus { name: bus } = host.resolver.physical("ShopEventBus").unwrap().clone() else { panic!() };
    let rules = aws_sdk_eventbridge::Client::new(&host.sdk).list_rules().event_bus_name(bus).send().await.unwrap();
    let stock_watch =
        rules.rules().iter().find(|r| r.name().unwrap_or_default().contains("StockWatch")).expect("the new rule");
    let pattern: Value = serde_json::from_str(stock_watch.event_pattern().unwrap()).unwrap();
    assert_eq!(pattern, json!({"source": ["shop.inventory"], "detail-type": ["StockLow"]}));
}

#[tokio::test]
async fn a_rule_whose_target_is_the_state_machine_starts_executions_with_the_event() {
    let path = edited_template(|text| {
        *text = text.replacen(
            "Resources:\n",
            "Resources:\n  ReplayRule:\n    Type: AWS::Events::Rule\n    Properties:\n      EventBusName: !Ref ShopEventBus\n      EventPattern:\n        source: [shop.ops]\n        detail-type: [ReplayOrder]\n      Targets:\n        - Id: saga\n          Arn: !Ref FulfilmentStateMachine\n          RoleArn: arn:aws:iam::123456789012:role/unused-locally\n\n",
            1,
        );
    });
    let host =
        Host::start(HostConfig { http_port: 0, template: Some(path.clone()), ..HostConfig::default() }).await.unwrap();
    std::fs::remove_file(path).unwrap();
    let Physical::Bus { name: bus } = host.resolver.physical("ShopEventBus").unwrap().clone() else { panic!() };
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source("shop.ops")
        .detail_type("ReplayOrder")
        .detail(r#"{"order_id": "o-replayed"}"#)
        .build();
    aws_sdk_eventbridge::Client::new(&host.sdk).put_events().entries(entry).send().await.unwrap();

    let sfn = aws_sdk_sfn::Client::new(&host.sdk);
    let deadline = Instant::now() + Duration::from_secs(10);
    let executions = loop {
        let page = sfn.list_executions().state_machine_arn(host.state_machine_arn().unwrap()).send().await.unwrap();
        if !page.executions().is_empty() {
            break page.executions().to_vec();
        }
        assert!(Instant::now() < deadline, "no execution started");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(executions.len(), 1);
    let described = sfn.describe_execution().execution_arn(executions[0].execution_arn()).send().await.unwrap();
    let input: Value = serde_json::from_str(described.input().unwrap()).unwrap();
    assert_eq!(input["detail"]["order_id"], "o-replayed", "the event is the execution's input");
}

#[tokio::test]
async fn a_function_that_keeps_failing_is_retried_as_declared_then_its_event_goes_to_the_dlq() {
    let host = host().await;
    let Physical::Bus { name: bus } = host.resolver.physical("ShopEventBus").unwrap().clone() else { panic!() };
    // An OrderConfirmed the consumer cannot read: its handler fails on every try.
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source("shop.orders")
        .detail_type("OrderConfirmed")
        .detail(r#"{"not": "an envelope"}"#)
        .build();
    aws_sdk_eventbridge::Client::new(&host.sdk).put_events().entries(entry).send().await.unwrap();

    let Physical::Queue { url, .. } = host.resolver.physical("SagaDLQ").unwrap().clone() else { panic!() };
    let sqs = aws_sdk_sqs::Client::new(&host.sdk);
    let deadline = Instant::now() + Duration::from_secs(15);
    let message = loop {
        let received = sqs.receive_message().queue_url(&url).wait_time_seconds(1).send().await.unwrap();
        if let Some(message) = received.messages().first() {
            break message.body().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "nothing reached the DLQ");
    };
    // Lambda's record of a failed asynchronous invocation:
    // https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html
    let dead: Value = serde_json::from_str(&message).unwrap();
    assert!(
        dead["requestContext"]["functionArn"].as_str().unwrap().contains(":function:inventory-order-events"),
        "{dead}"
    );
    assert_eq!(dead["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(dead["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(dead["requestPayload"]["detail"], json!({"not": "an envelope"}));
    assert!(dead["responsePayload"]["errorMessage"].as_str().unwrap().contains("not an order outcome event"), "{dead}");
    let tries: Vec<u32> =
        host.invocations().into_iter().filter(|i| i.binary == "inventory-order-events").map(|i| i.attempt).collect();
    assert_eq!(tries, [1, 2, 3], "the first try and the two retries of EventInvokeConfig");
}

#[tokio::test]
async fn a_stream_batch_that_keeps_failing_is_retried_then_sent_to_the_relays_dlq() {
    // Every relay publishes to a bus that does not exist: each batch fails, record by record.
    let env_overrides = [("EVENT_BUS_NAME".to_owned(), "no-such-bus".to_owned())].into();
    let host = Host::start(HostConfig { http_port: 0, env_overrides, ..HostConfig::default() }).await.unwrap();
    let client = Client { http: reqwest::Client::new(), base: host.base_url() };
    let id = client.order("cust-1", "SKU-ANY", 1, "pm_card_visa").await;

    let Physical::Queue { url, .. } = host.resolver.physical("OrdersOutboxRelayDLQ").unwrap().clone() else { panic!() };
    let sqs = aws_sdk_sqs::Client::new(&host.sdk);
    let deadline = Instant::now() + Duration::from_secs(40);
    let message = loop {
        let received = sqs.receive_message().queue_url(&url).wait_time_seconds(1).send().await.unwrap();
        if let Some(message) = received.messages().first() {
            break message.body().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "nothing reached the relay's DLQ");
    };
    // What Lambda sends a stream trigger's SQS destination: where the batch was, not the records
    // (https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html).
    let dead: Value = serde_json::from_str(&message).unwrap();
    assert!(
        dead["requestContext"]["functionArn"].as_str().unwrap().ends_with(":function:orders-outbox-relay"),
        "{dead}"
    );
    assert_eq!(dead["requestContext"]["condition"], "RetryAttemptsExhausted");
    let batch = &dead["DDBStreamBatchInfo"];
    assert_eq!(batch["batchSize"], 1, "the OrderCreated outbox record: {dead}");
    assert_eq!(batch["startSequenceNumber"], batch["endSequenceNumber"]);
    assert!(dead.get("records").is_none() && dead.to_string().find(&id).is_none(), "no record content: {dead}");
    // The record itself is still in the stream, where the batch info points.
    let Physical::Table { stream_arn, .. } = host.resolver.physical("OrdersTable").unwrap().clone() else { panic!() };
    assert_eq!(batch["streamArn"].as_str(), stream_arn.as_deref());
    let streams = aws_sdk_dynamodbstreams::Client::new(&host.sdk);
    let iterator = streams
        .get_shard_iterator()
        .stream_arn(stream_arn.unwrap())
        .shard_id(batch["shardId"].as_str().unwrap())
        .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::AtSequenceNumber)
        .sequence_number(batch["startSequenceNumber"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let records = streams.get_records().shard_iterator(iterator).limit(1).send().await.unwrap();
    let image = records.records()[0].dynamodb().unwrap().new_image().unwrap();
    assert_eq!(image["detail_type"].as_s().unwrap(), "OrderCreated");
    assert!(image["pk"].as_s().unwrap().ends_with(&id));
    let tries = host.invocations().into_iter().filter(|i| i.binary == "orders-outbox-relay").count();
    assert_eq!(tries, 11, "the first try and ten local retries");
}

#[tokio::test]
async fn the_public_api_answers_undeclared_methods_with_405_and_allow() {
    let host = host().await;
    let http = reqwest::Client::new();
    let response = http.delete(format!("{}/api/orders", host.base_url())).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let response = http.get(format!("{}/api/nothing-here", host.base_url())).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
}
