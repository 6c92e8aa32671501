//! The local system end to end: started from the project's template, driven only over HTTP like
//! a client would, with orders ending CONFIRMED or CANCELLED as expected and the three tables
//! agreeing. Also: routes, rules and tables come from the template, and a busy port is refused;
//! the authorizers the template declares are enforced where API Gateway enforces them.

use local_aws::fixtures::ORDER_ID;
use std::time::{Duration, Instant};

use local_host::{Host, HostConfig, Physical};
use serde_json::{Value, json};

async fn host() -> Host {
    Host::start(HostConfig { http_port: 0, ..HostConfig::default() })
        .await
        .expect("the local system starts (moto is installed by `make setup`)")
}

/// A client of the local system: the public API (`/api/...`) with a customer's or an admin's
/// token, the internal APIs signed with the local credentials, as their `AWS_IAM` routes require.
struct Client<'a> {
    http: reqwest::Client,
    host: &'a Host,
}

impl<'a> Client<'a> {
    fn new(host: &'a Host) -> Self {
        Self { http: reqwest::Client::new(), host }
    }

    async fn send(&self, request: reqwest::Request) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = self.http.execute(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    fn request(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.host.base_url()));
        match body {
            Some(body) => request.json(&body),
            None => request,
        }
    }

    /// An internal API call, signed.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.request(method, path, body).build().unwrap();
        self.host.sign(&mut request);
        let (status, _, body) = self.send(request).await;
        (status, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// A public API call with `token`.
    async fn call_as(&self, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let request = self.request(method, path, body).bearer_auth(token).build().unwrap();
        let (status, _, body) = self.send(request).await;
        (status, body)
    }

    /// An order placed through the orders service's internal API.
    async fn order(&self, customer: &str, sku: &str, quantity: u32, payment_method: &str) -> String {
        let body = json!({"customer_id": customer, "payment_method": payment_method,
                          "items": [{"sku": sku, "quantity": quantity}]});
        let (status, order) = self.call(reqwest::Method::POST, "/orders", Some(body)).await;
        assert_eq!(status, 201, "{order}");
        order["id"].as_str().unwrap().to_owned()
    }

    /// An order placed through the public API, as the customer whose token it is.
    async fn place(&self, token: &str, sku: &str, quantity: u32, payment_method: &str) -> String {
        let body = json!({"payment_method": payment_method, "items": [{"sku": sku, "quantity": quantity}]});
        let (status, order) = self.call_as(token, reqwest::Method::POST, "/api/orders", Some(body)).await;
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
    let client = Client::new(&host);
    // The catalogue is stocked through the public API, with an admin's token.
    let admin = host.token("ops-1", &["admin"]);
    let put =
        |sku: &str| json!({"name": sku, "price": {"amount_minor": 900, "currency": "EUR"}, "low_stock_threshold": 1});
    for (sku, units) in [("SKU-TEA", 5), ("SKU-RARE", 1)] {
        let (status, body) =
            client.call_as(&admin, reqwest::Method::PUT, &format!("/api/products/{sku}"), Some(put(sku))).await;
        assert_eq!(status, 200, "{body}");
        let restock = json!({"restock_id": "initial", "quantity": units});
        let path = format!("/api/products/{sku}/restock");
        let (status, body) = client.call_as(&admin, reqwest::Method::POST, &path, Some(restock)).await;
        assert_eq!((status, &body["available"]), (200, &json!(units)), "{body}");
    }

    let happy = client.place(&host.token("cust-1", &[]), "SKU-TEA", 2, "pm_card_visa").await;
    let short = client.place(&host.token("cust-2", &[]), "SKU-RARE", 3, "pm_card_visa").await;
    let declined = client.place(&host.token("cust-3", &[]), "SKU-TEA", 1, "pm_card_visa_chargeDeclined").await;

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

    // The public API's view of the same order, gathered in parallel by the gateway, for its
    // customer.
    let cust1 = host.token("cust-1", &[]);
    let (status, view) = client.call_as(&cust1, reqwest::Method::GET, &format!("/api/orders/{happy}"), None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["order"]["status"], "CONFIRMED");
    assert_eq!(view["payment"]["status"], "CAPTURED");
    assert_eq!(view["reservation"]["status"], "COMMITTED");
    assert_eq!(view["saga"], json!({"status": "SUCCEEDED", "step": "ConfirmOrder"}));
    assert_eq!(view["degraded"], json!([]));
    let cust3 = host.token("cust-3", &[]);
    let (_, view) = client.call_as(&cust3, reqwest::Method::GET, &format!("/api/orders/{declined}"), None).await;
    assert_eq!(view["saga"], json!({"status": "SUCCEEDED", "step": "CancelOrder"}));
    // The customer learns the decline only as one of the public reasons.
    assert_eq!(view["payment"]["decline"]["reason"], "card_declined", "{view}");
    let (_, product) = client.call_as("", reqwest::Method::GET, "/api/products/SKU-TEA", None).await;
    assert_eq!(product["available"], 3, "the catalogue is read without a token");

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
    let mut order = http.get(format!("{}/orders/{ORDER_ID}", host.base_url())).build().unwrap();
    host.sign(&mut order);
    let order = http.execute(order).await.unwrap();
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
    let client = Client::new(&host);
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
    let token = host.token("cust-1", &[]);
    let response = http.delete(format!("{}/api/orders", host.base_url())).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST,GET,HEAD");
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let response = http.get(format!("{}/api/nothing-here", host.base_url())).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
}

// ---------------------------------------------------------------- the authorizers (#16)

/// A public route behind the template's JWT authorizer: the gateway (`gateway-api`) must never
/// run for a request API Gateway would refuse.
fn gateway_runs(host: &Host) -> usize {
    host.invocations().iter().filter(|i| i.binary == "gateway-api").count()
}

/// Every token API Gateway's JWT authorizer refuses gets its 401 (`{"message":"Unauthorized"}`,
/// the reason in `www-authenticate`) before the gateway runs
/// (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html>,
/// <https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-troubleshooting-jwt.html>).
#[tokio::test]
async fn every_bad_token_is_401_before_the_gateway_runs_and_a_good_one_gets_through() {
    let host = host().await;
    let issuer = host.issuer();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = |changes: Value| {
        let mut claims = json!({"iss": issuer.issuer(), "sub": "c1", "aud": issuer.audience(),
            "iat": now - 10, "exp": now + 600});
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    };
    let good = issuer.sign(&claims(json!({})));
    // Another key, with its own kid: not one of the issuer's.
    let stranger =
        local_host::auth::LocalIssuer::generate(issuer.issuer().into(), issuer.audience().into(), "g".into())
            .unwrap()
            .sign(&claims(json!({})));
    // The issuer's kid and header, another token's payload: the signature does not match.
    let forged = {
        let parts: Vec<&str> = good.split('.').collect();
        let other = issuer.sign(&claims(json!({"sub": "admin-wannabe", "cognito:groups": ["admin"]})));
        let other: Vec<&str> = other.split('.').collect();
        format!("{}.{}.{}", parts[0], other[1], parts[2])
    };
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(json!({})),
        &jsonwebtoken::EncodingKey::from_secret(b"guessable").unwrap(),
    )
    .unwrap();
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("missing", None, "missing"),
        ("malformed", Some("Bearer not.a.jwt".into()), "malformed"),
        ("not a JWT at all", Some("Basic dXNlcjpwYXNz".into()), "malformed"),
        ("expired", Some(format!("Bearer {}", issuer.sign(&claims(json!({"exp": now - 1}))))), "expired"),
        ("not yet valid", Some(format!("Bearer {}", issuer.sign(&claims(json!({"nbf": now + 600}))))), "not valid yet"),
        ("issued in the future", Some(format!("Bearer {}", issuer.sign(&claims(json!({"iat": now + 600}))))), "future"),
        ("wrongly signed", Some(format!("Bearer {forged}")), "signature"),
        ("signed by another key", Some(format!("Bearer {stranger}")), "kid"),
        ("HMAC instead of RSA", Some(format!("Bearer {hs256}")), "HS256"),
        ("wrong audience", Some(format!("Bearer {}", issuer.sign(&claims(json!({"aud": "another-app"}))))), "audience"),
        ("no audience", Some(format!("Bearer {}", issuer.sign(&claims(json!({"aud": null}))))), "audience"),
        (
            "wrong issuer",
            Some(format!("Bearer {}", issuer.sign(&claims(json!({"iss": "https://cognito-idp.example/else"}))))),
            "issuer",
        ),
    ];
    let http = reqwest::Client::new();
    let before = gateway_runs(&host);
    for (what, authorization, reason) in &cases {
        for (method, path) in [("GET", "/api/orders"), ("POST", "/api/orders"), ("PUT", "/api/products/SKU-1")] {
            let mut request = http.request(method.parse().unwrap(), format!("{}{path}", host.base_url()));
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let response = request.json(&json!({})).send().await.unwrap();
            assert_eq!(response.status(), 401, "{what}: {method} {path}");
            let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
            assert!(challenge.starts_with("Bearer") && challenge.contains("invalid_token"), "{what}: {challenge}");
            assert!(challenge.contains(reason), "{what}: {challenge}");
            assert_eq!(response.text().await.unwrap(), r#"{"message":"Unauthorized"}"#, "{what}");
        }
    }
    assert_eq!(gateway_runs(&host), before, "API Gateway refuses these before the gateway runs");

    // The token alone works as well as after `Bearer`, and a client_id stands for a missing aud
    // (Cognito's access tokens), as API Gateway reads them.
    let access = issuer.sign(&claims(json!({"aud": null, "client_id": issuer.audience()})));
    for authorization in [format!("Bearer {good}"), good.clone(), format!("bearer {access}")] {
        let response = http
            .get(format!("{}/api/orders", host.base_url()))
            .header("authorization", authorization)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.unwrap();
        assert_eq!(page, json!({"orders": []}));
    }
    // The catalogue's reads and the document need no token.
    let response = http.get(format!("{}/api/openapi.json", host.base_url())).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = http.get(format!("{}/api/products/SKU-NONE", host.base_url())).send().await.unwrap();
    assert_eq!(response.status(), 404, "the gateway ran and inventory has no such product");
}

/// The local token endpoint, as `make token` calls it.
#[tokio::test]
async fn the_local_issuer_serves_tokens_its_keys_and_its_discovery_document() {
    let host = host().await;
    let http = reqwest::Client::new();
    let base = host.base_url();
    let answer = http
        .post(format!("{base}/_local/token"))
        .json(&json!({"sub": "c1", "groups": ["admin"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let token: Value = answer.json().await.unwrap();
    assert_eq!((token["token_type"].as_str(), token["expires_in"].as_i64()), (Some("Bearer"), Some(3600)));
    let claims =
        jsonwebtoken::dangerous::insecure_decode::<Value>(token["access_token"].as_str().unwrap()).unwrap().claims;
    assert_eq!((claims["sub"].as_str(), &claims["cognito:groups"]), (Some("c1"), &json!(["admin"])));
    assert_eq!(claims["iss"], format!("{base}/_local"));
    let discovery: Value =
        http.get(format!("{base}/_local/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(discovery["issuer"], format!("{base}/_local"));
    let jwks: Value = http.get(discovery["jwks_uri"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    assert!(jwks["keys"][0].get("d").is_none(), "the public key only");
    for bad in
        [json!({}), json!({"sub": ""}), json!({"sub": "c1", "customer": "x"}), json!({"sub": "c1", "expires_in": 0})]
    {
        let answer = http.post(format!("{base}/_local/token")).json(&bad).send().await.unwrap();
        assert_eq!(answer.status(), 400, "{bad}");
    }
}

/// Who the token says decides what the public API shows and does: the customer is the `sub`,
/// another customer's order is a 404, each customer lists only their own orders (newest first,
/// a page at a time), idempotency keys are per customer, and only an admin stocks the catalogue
/// or reads any order.
#[tokio::test]
async fn the_token_decides_whose_orders_a_caller_sees_and_what_they_may_do() {
    let host = host().await;
    let client = Client::new(&host);
    let (alice, bob, admin) = (host.token("alice", &[]), host.token("bob", &[]), host.token("ops", &["admin"]));
    let spec = json!({"name": "Mug", "price": {"amount_minor": 500, "currency": "EUR"}});
    let (status, body) =
        client.call_as(&alice, reqwest::Method::PUT, "/api/products/SKU-MUG", Some(spec.clone())).await;
    assert_eq!(status, 403, "a customer cannot create a product: {body}");
    let restock = json!({"restock_id": "r1", "quantity": 50});
    let path = "/api/products/SKU-MUG/restock";
    let (status, _) = client.call_as(&bob, reqwest::Method::POST, path, Some(restock.clone())).await;
    assert_eq!(status, 403, "nor restock");
    let (status, _) = client.call_as(&admin, reqwest::Method::PUT, "/api/products/SKU-MUG", Some(spec)).await;
    assert_eq!(status, 200);
    let (status, product) = client.call_as(&admin, reqwest::Method::POST, path, Some(restock)).await;
    assert_eq!((status, &product["available"]), (200, &json!(50)), "{product}");

    let forged =
        json!({"customer_id": "bob", "payment_method": "pm_card_visa", "items": [{"sku": "SKU-MUG", "quantity": 1}]});
    let (status, body) = client.call_as(&alice, reqwest::Method::POST, "/api/orders", Some(forged)).await;
    assert_eq!((status, &body["invalid-params"][0]["name"]), (400, &json!("customer_id")), "{body}");

    let first = client.place(&alice, "SKU-MUG", 1, "pm_card_visa").await;
    let second = client.place(&alice, "SKU-MUG", 2, "pm_card_visa").await;
    let (_, order) = client.call_as(&alice, reqwest::Method::GET, &format!("/api/orders/{first}"), None).await;
    assert_eq!(order["order"]["customer_id"], "alice", "{order}");
    let (status, body) = client.call_as(&bob, reqwest::Method::GET, &format!("/api/orders/{first}"), None).await;
    assert_eq!(status, 404, "bob does not learn that alice's order exists: {body}");
    let unknown = uuid::Uuid::now_v7();
    let (_, unknown_body) = client.call_as(&bob, reqwest::Method::GET, &format!("/api/orders/{unknown}"), None).await;
    assert_eq!(body["title"], unknown_body["title"]);
    let (status, body) = client.call_as(&admin, reqwest::Method::GET, &format!("/api/orders/{first}"), None).await;
    assert_eq!((status, &body["order"]["customer_id"]), (200, &json!("alice")), "an admin reads any order");

    let (status, page) = client.call_as(&alice, reqwest::Method::GET, "/api/orders?limit=1", None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["orders"][0]["id"], json!(second), "newest first");
    let cursor = page["next_cursor"].as_str().expect("a second page").to_owned();
    let (_, rest) =
        client.call_as(&alice, reqwest::Method::GET, &format!("/api/orders?limit=1&cursor={cursor}"), None).await;
    assert_eq!(rest["orders"][0]["id"], json!(first));
    assert!(rest.get("next_cursor").is_none(), "{rest}");
    let (status, _) = client.call_as(&bob, reqwest::Method::GET, &format!("/api/orders?cursor={cursor}"), None).await;
    assert_eq!(status, 400, "alice's cursor is not bob's");
    let (_, bobs) = client.call_as(&bob, reqwest::Method::GET, "/api/orders", None).await;
    assert_eq!(bobs, json!({"orders": []}));

    // The same key from two customers: two orders; from the same customer again: a replay.
    let keyed = |token: &str| {
        client
            .http
            .post(format!("{}/api/orders", host.base_url()))
            .bearer_auth(token)
            .header("idempotency-key", "checkout-1")
            .json(&json!({"payment_method": "pm_card_visa", "items": [{"sku": "SKU-MUG", "quantity": 1}]}))
            .build()
            .unwrap()
    };
    let (status, _, alices) = client.send(keyed(&alice)).await;
    assert_eq!(status, 201, "{alices}");
    let (status, headers, bobs) = client.send(keyed(&bob)).await;
    assert_eq!(status, 201, "{bobs}");
    assert!(headers.get("idempotent-replayed").is_none());
    assert_ne!(alices["id"], bobs["id"]);
    assert_eq!(bobs["customer_id"], "bob");
    let (_, headers, again) = client.send(keyed(&bob)).await;
    assert_eq!((headers["idempotent-replayed"].to_str().unwrap(), &again["id"]), ("true", &bobs["id"]));
}

/// The internal APIs are `AWS_IAM` in the template: locally too, an unsigned or wrongly signed
/// call is API Gateway's 403 and reaches no function; one signed with the local credentials is
/// served (<https://repost.aws/knowledge-center/api-gateway-troubleshoot-403-forbidden>).
#[tokio::test]
async fn internal_apis_refuse_unsigned_and_wrongly_signed_calls_and_serve_signed_ones() {
    use aws_credential_types::provider::ProvideCredentials;
    let host = host().await;
    let http = reqwest::Client::new();
    let base = host.base_url();
    let runs = |binary: &str| host.invocations().iter().filter(|i| i.binary == binary).count();

    let unsigned = http.get(format!("{base}/inventory/SKU-1")).send().await.unwrap();
    assert_eq!(unsigned.status(), 403);
    assert_eq!(unsigned.headers()["x-amzn-errortype"], "MissingAuthenticationTokenException");
    assert_eq!(unsigned.text().await.unwrap(), r#"{"message":"Missing Authentication Token"}"#);

    let local = host.sdk.credentials_provider().unwrap().provide_credentials().await.unwrap();
    let wrong_secret = local_host::sigv4::IamVerifier::new(
        aws_credential_types::Credentials::new(local.access_key_id(), "not-the-secret", None, None, "test"),
        "us-east-1",
    );
    let unknown_key = local_host::sigv4::IamVerifier::new(
        aws_credential_types::Credentials::new("AKIAUNKNOWN", local.secret_access_key(), None, None, "test"),
        "us-east-1",
    );
    let body = json!({"customer_id": "c1", "payment_method": "pm_card_visa", "items": [{"sku": "A", "quantity": 1}]});
    let mut cases = Vec::new();
    let mut request = http.post(format!("{base}/orders")).json(&body).build().unwrap();
    wrong_secret.sign(&mut request);
    cases.push(("a wrong secret", request, "InvalidSignatureException"));
    let mut request = http.post(format!("{base}/orders")).json(&body).build().unwrap();
    unknown_key.sign(&mut request);
    cases.push(("an unknown access key", request, "UnrecognizedClientException"));
    // Signed, then changed: another body, another path.
    let mut request = http.post(format!("{base}/orders")).json(&body).build().unwrap();
    host.sign(&mut request);
    *request.body_mut() = Some(r#"{"customer_id":"someone-else"}"#.into());
    cases.push(("a body changed after signing", request, "InvalidSignatureException"));
    let mut request = http.get(format!("{base}/inventory/SKU-1")).build().unwrap();
    host.sign(&mut request);
    *request.url_mut() = format!("{base}/inventory/SKU-2").parse().unwrap();
    cases.push(("a path changed after signing", request, "InvalidSignatureException"));
    let mut request = http.get(format!("{base}/payments/order/x")).build().unwrap();
    host.sign(&mut request);
    request.headers_mut().insert("x-amz-date", "20200101T000000Z".parse().unwrap());
    cases.push(("a date changed after signing (and 5 minutes away)", request, "InvalidSignatureException"));
    for (what, request, error_type) in cases {
        let response = http.execute(request).await.unwrap();
        assert_eq!(response.status(), 403, "{what}");
        assert_eq!(response.headers()["x-amzn-errortype"], error_type, "{what}");
    }
    assert_eq!((runs("orders-api"), runs("inventory-api"), runs("payments-api")), (0, 0, 0), "no function ran");

    let mut request = http.post(format!("{base}/orders")).json(&body).build().unwrap();
    host.sign(&mut request);
    let response = http.execute(request).await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let mut request = http.get(format!("{base}/inventory/SKU-1")).build().unwrap();
    host.sign(&mut request);
    assert_eq!(http.execute(request).await.unwrap().status(), 404, "served: inventory has no such product");
    assert_eq!((runs("orders-api"), runs("inventory-api")), (1, 1));
}
