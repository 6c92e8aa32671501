//! The bus's contracts: a JSON Schema per event type and per saga command, generated from the
//! Rust types the producers write and the consumers read, checked into `infra/events/` with an
//! AsyncAPI 3.0 document of the bus (channels, producers, and the consumers the template's rules
//! deliver each message to). Every schema carries an example, and every consumer is fed every
//! example it is subscribed to, as sent and widened with a field in every object: consumers are
//! tolerant readers.
//!
//! `UPDATE_SCHEMAS=1 cargo nextest run -p local-host contracts::` rewrites `infra/events/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};
use shared::aws::saga::{InMemoryTaskReporter, SagaCommand, TaskOutcome};
use shared_core::envelope::{ENVELOPE_VERSION, widened};
use shared_core::money::Money;
use shared_core::{CorrelationId, DomainEvent};
use uuid::Uuid;

use local_aws::fixtures::ORDER_ID;
const SKU: &str = "SKU-RED-MUG";
const CORRELATION_ID: &str = "demo-correlation-1";
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn events_dir() -> PathBuf {
    root().join("infra/events")
}

/// One message on the bus.
struct Contract {
    /// The `detail-type` (and the envelope's `event_type`).
    name: &'static str,
    source: &'static str,
    /// Who publishes it, and how.
    producer: &'static str,
    kind: Kind,
    /// The type's JSON Schema, with `title` and `examples` set.
    schema: Value,
    /// The `detail` of an example event.
    example: Value,
    /// Reads a `detail` as the Rust type consumers use.
    read: fn(&Value) -> Result<(), String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Event,
    Command,
}

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-27T10:00:00.000Z").unwrap().with_timezone(&Utc)
}

fn event_id(name: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes())
}

fn event<T: Serialize>(name: &str, data: T) -> Value {
    let mut event = DomainEvent::new(name, ORDER_ID, CorrelationId::parse(CORRELATION_ID).unwrap(), at(), data);
    event.event_id = event_id(name);
    event.traceparent = Some(TRACEPARENT.to_owned());
    serde_json::to_value(event).unwrap()
}

fn command<T: Serialize>(name: &str, data: T) -> Value {
    let command = SagaCommand {
        event_id: event_id(name),
        event_type: name.to_owned(),
        aggregate_id: ORDER_ID.to_owned(),
        occurred_at: at(),
        correlation_id: CorrelationId::parse(CORRELATION_ID).unwrap(),
        version: ENVELOPE_VERSION,
        traceparent: Some(TRACEPARENT.to_owned()),
        task_token: format!("AQCEAAAAKgAAAAMAAAAAAAAAAdemo-task-token-{name}"),
        data,
    };
    serde_json::to_value(command).unwrap()
}

/// Drops `additionalProperties: false` (which schemars writes for a type that denies unknown
/// fields, such as `Money`, strict in HTTP bodies): no message on the bus forbids a field a newer
/// producer may add.
fn open_to_new_fields(schema: &mut Value) {
    match schema {
        Value::Object(fields) => {
            if fields.get("additionalProperties") == Some(&Value::Bool(false)) {
                fields.remove("additionalProperties");
            }
            fields.values_mut().for_each(open_to_new_fields);
        }
        Value::Array(items) => items.iter_mut().for_each(open_to_new_fields),
        _ => {}
    }
}

/// Draft-07, the JSON Schema dialect AsyncAPI 3.0 names (`application/schema+json;version=draft-07`).
fn schema<T: JsonSchema>(name: &str, kind: Kind, example: &Value) -> Value {
    let schema = schemars::generate::SchemaSettings::draft07().into_generator().into_root_schema_for::<T>();
    let mut schema = serde_json::to_value(schema).unwrap();
    open_to_new_fields(&mut schema);
    let data = schema["properties"]["data"]["$ref"].as_str().and_then(|r| schema.pointer(r.trim_start_matches('#')));
    let what = data.and_then(|d| d["description"].as_str()).unwrap_or_default().replace('\n', " ");
    let envelope = match kind {
        Kind::Event => "In the event envelope (shared_core::envelope::DomainEvent).",
        Kind::Command => "In the saga command envelope (shared::aws::saga::SagaCommand): answer with the task token.",
    };
    schema["title"] = json!(name);
    schema["description"] =
        json!(format!("{what} {envelope} Readers ignore fields they do not know.").trim().to_owned());
    schema["examples"] = json!([example]);
    schema
}

fn contract<T: JsonSchema + Serialize + serde::de::DeserializeOwned>(
    name: &'static str,
    source: &'static str,
    producer: &'static str,
    kind: Kind,
    example: Value,
) -> Contract {
    let read = |detail: &Value| serde_json::from_value::<T>(detail.clone()).map(drop).map_err(|e| e.to_string());
    Contract { name, source, producer, kind, schema: schema::<T>(name, kind, &example), example, read }
}

fn lines() -> Vec<orders::domain::OrderLine> {
    vec![orders::domain::OrderLine { sku: SKU.into(), quantity: 2 }]
}

fn reserved() -> Vec<inventory::domain::ReservedLine> {
    vec![inventory::domain::ReservedLine { sku: SKU.into(), quantity: 2, unit_price_minor: 1250 }]
}

fn eur(amount_minor: u64) -> Money {
    Money::new(amount_minor, "EUR")
}

/// Every message on the bus: the events of each service (published by its outbox relay, or its
/// stream relay for `StockLow`) and the saga's commands (published by the state machine).
fn contracts() -> Vec<Contract> {
    use Kind::{Command, Event};
    use inventory::events as inv;
    use orders::events as ord;
    use payments::events as pay;
    const ORDERS: &str = "orders service, through the outbox relay on its table's stream";
    const INVENTORY: &str = "inventory service, through the outbox relay on its table's stream";
    const PAYMENTS: &str = "payments service, through the outbox relay on its table's stream";
    const SAGA: &str = "fulfilment state machine (infra/statemachine/fulfilment.asl.json) and, for the \
                        compensation commands, the compensation state machine (compensate.asl.json)";
    let order_id = shared_core::OrderId::parse(ORDER_ID).unwrap();
    let customer_id = "cust-42".to_owned();
    vec![
        contract::<DomainEvent<ord::OrderCreated>>(
            ord::ORDER_CREATED,
            "shop.orders",
            ORDERS,
            Event,
            event(
                ord::ORDER_CREATED,
                ord::OrderCreated {
                    order_id,
                    customer_id: customer_id.clone(),
                    payment_method: "pm_card_visa".into(),
                    lines: lines(),
                },
            ),
        ),
        contract::<DomainEvent<ord::OrderConfirmed>>(
            ord::ORDER_CONFIRMED,
            "shop.orders",
            ORDERS,
            Event,
            event(ord::ORDER_CONFIRMED, ord::OrderConfirmed { order_id, customer_id: customer_id.clone() }),
        ),
        contract::<DomainEvent<orders::parking::OrderCompensationPending>>(
            orders::parking::ORDER_COMPENSATION_PENDING,
            "shop.orders",
            "orders service (ParkOrder and the sweeper), through the outbox relay on its table's stream",
            Event,
            event(
                orders::parking::ORDER_COMPENSATION_PENDING,
                orders::parking::OrderCompensationPending {
                    order_id,
                    customer_id: customer_id.clone(),
                    failed_step: "RefundPayment".into(),
                    error: "ProviderUnavailable".into(),
                    owed: orders::parking::Owed { refund_payment: true, release_inventory: true },
                    next_attempt_at: at(),
                },
            ),
        ),
        contract::<DomainEvent<ord::OrderCancelled>>(
            ord::ORDER_CANCELLED,
            "shop.orders",
            ORDERS,
            Event,
            event(
                ord::ORDER_CANCELLED,
                ord::OrderCancelled { order_id, customer_id, reason: "PaymentDeclined".into() },
            ),
        ),
        contract::<DomainEvent<inv::InventoryReserved>>(
            inv::INVENTORY_RESERVED,
            "shop.inventory",
            INVENTORY,
            Event,
            event(
                inv::INVENTORY_RESERVED,
                inv::InventoryReserved { order_id, lines: reserved(), currency: "EUR".into(), total_minor: 2500 },
            ),
        ),
        contract::<DomainEvent<inv::InventoryReservationFailed>>(
            inv::INVENTORY_RESERVATION_FAILED,
            "shop.inventory",
            INVENTORY,
            Event,
            event(
                inv::INVENTORY_RESERVATION_FAILED,
                inv::InventoryReservationFailed {
                    order_id,
                    shortages: vec![inventory::domain::Shortage {
                        sku: SKU.into(),
                        requested: 2,
                        available: 1,
                        unknown: false,
                    }],
                },
            ),
        ),
        contract::<DomainEvent<inv::InventoryReleased>>(
            inv::INVENTORY_RELEASED,
            "shop.inventory",
            INVENTORY,
            Event,
            event(inv::INVENTORY_RELEASED, inv::InventoryReleased { order_id, lines: reserved() }),
        ),
        contract::<DomainEvent<inv::StockLow>>(
            inv::STOCK_LOW,
            "shop.inventory",
            "inventory service, by its stream relay when a product's available stock falls below its threshold",
            Event,
            event(inv::STOCK_LOW, inv::StockLow { sku: SKU.into(), available: 3, threshold: 5 }),
        ),
        contract::<DomainEvent<pay::PaymentCompleted>>(
            pay::PAYMENT_COMPLETED,
            "shop.payments",
            PAYMENTS,
            Event,
            event(
                pay::PAYMENT_COMPLETED,
                pay::PaymentCompleted { order_id, provider_payment_id: format!("pi_{ORDER_ID}"), amount: eur(2500) },
            ),
        ),
        contract::<DomainEvent<pay::PaymentDeclined>>(
            pay::PAYMENT_DECLINED,
            "shop.payments",
            PAYMENTS,
            Event,
            event(
                pay::PAYMENT_DECLINED,
                pay::PaymentDeclined {
                    order_id,
                    amount: eur(2500),
                    reason: "insufficient_funds".into(),
                    message: "Your card has insufficient funds.".into(),
                },
            ),
        ),
        contract::<DomainEvent<pay::PaymentVoided>>(
            pay::PAYMENT_VOIDED,
            "shop.payments",
            PAYMENTS,
            Event,
            event(pay::PAYMENT_VOIDED, pay::PaymentVoided { order_id, amount: eur(2500) }),
        ),
        contract::<DomainEvent<pay::PaymentRefunded>>(
            pay::PAYMENT_REFUNDED,
            "shop.payments",
            PAYMENTS,
            Event,
            event(
                pay::PAYMENT_REFUNDED,
                pay::PaymentRefunded {
                    order_id,
                    provider_payment_id: format!("pi_{ORDER_ID}"),
                    refund_id: format!("re_{ORDER_ID}"),
                    amount: eur(2500),
                },
            ),
        ),
        contract::<DomainEvent<shared::aws::saga::SagaCompensationFailed>>(
            shared::aws::saga::SAGA_COMPENSATION_FAILED,
            "shop.saga",
            SAGA,
            Event,
            event(
                shared::aws::saga::SAGA_COMPENSATION_FAILED,
                shared::aws::saga::SagaCompensationFailed {
                    order_id,
                    execution_arn: format!(
                        "arn:aws:states:us-east-1:123456789012:execution:FulfilmentStateMachine:{ORDER_ID}"
                    ),
                    compensation_error: json!({"Error": "RefundFailed", "Cause": "the provider refused the refund"}),
                    saga_state: json!({"order_id": ORDER_ID}),
                },
            ),
        ),
        contract::<SagaCommand<inventory::saga::ReserveData>>(
            inventory::saga::RESERVE_INVENTORY,
            "shop.saga",
            SAGA,
            Command,
            command(
                inventory::saga::RESERVE_INVENTORY,
                inventory::saga::ReserveData {
                    order_id,
                    lines: vec![inventory::domain::RequestedLine { sku: SKU.into(), quantity: 2 }],
                },
            ),
        ),
        contract::<SagaCommand<inventory::saga::ReleaseData>>(
            inventory::saga::RELEASE_INVENTORY,
            "shop.saga",
            SAGA,
            Command,
            command(inventory::saga::RELEASE_INVENTORY, inventory::saga::ReleaseData { order_id }),
        ),
        contract::<SagaCommand<payments::saga::ProcessData>>(
            payments::saga::PROCESS_PAYMENT,
            "shop.saga",
            SAGA,
            Command,
            command(
                payments::saga::PROCESS_PAYMENT,
                payments::saga::ProcessData { order_id, amount: eur(2500), payment_method: "pm_card_visa".into() },
            ),
        ),
        contract::<SagaCommand<payments::saga::RefundData>>(
            payments::saga::REFUND_PAYMENT,
            "shop.saga",
            SAGA,
            Command,
            command(payments::saga::REFUND_PAYMENT, payments::saga::RefundData { order_id }),
        ),
        contract::<SagaCommand<orders::saga::ConfirmData>>(
            orders::saga::CONFIRM_ORDER,
            "shop.saga",
            SAGA,
            Command,
            command(orders::saga::CONFIRM_ORDER, orders::saga::ConfirmData { order_id }),
        ),
        contract::<SagaCommand<orders::saga::ParkData>>(
            orders::saga::PARK_ORDER,
            "shop.saga",
            SAGA,
            Command,
            command(
                orders::saga::PARK_ORDER,
                orders::saga::ParkData {
                    order_id,
                    failed_step: "RefundPayment".into(),
                    compensation_error: orders::sweeper::CaughtError {
                        error: "RefundFailed".into(),
                        cause: Some("the provider refused the refund".into()),
                    },
                    owed: orders::parking::Owed { refund_payment: true, release_inventory: true },
                    error: orders::sweeper::CaughtError {
                        error: "PaymentDeclined".into(),
                        cause: Some("insufficient_funds: Your card has insufficient funds.".into()),
                    },
                    attempt: None,
                },
            ),
        ),
        contract::<SagaCommand<orders::saga::CancelData>>(
            orders::saga::CANCEL_ORDER,
            "shop.saga",
            SAGA,
            Command,
            command(
                orders::saga::CANCEL_ORDER,
                orders::saga::CancelData {
                    order_id,
                    reason: "PaymentDeclined".into(),
                    detail: Some("insufficient_funds: Your card has insufficient funds.".into()),
                },
            ),
        ),
    ]
}

/// A rule on the bus, from the template: a function's `EventBridgeRule` event, or an
/// `AWS::Events::Rule` resource (whose targets are not functions of ours).
struct Rule {
    /// The function's logical id, or the rule's.
    consumer: String,
    /// `Function.Event` or the rule's logical id.
    rule: String,
    pattern: Value,
    /// Whether the consumer is one of our functions (it is fed the examples).
    function: bool,
    /// The `Id`s of an `AWS::Events::Rule`'s targets.
    targets: Vec<String>,
}

fn rules() -> Vec<Rule> {
    let template = local_aws::template::Template::load_project().expect("template.yaml parses");
    let mut rules: Vec<Rule> = template
        .event_rules()
        .expect("the template's rules parse")
        .into_iter()
        .map(|r| Rule {
            rule: format!("{}.{}", r.function, r.event),
            consumer: r.function,
            pattern: r.pattern,
            function: true,
            targets: Vec::new(),
        })
        .collect();
    for (id, resource) in template.resources_of_type("AWS::Events::Rule") {
        let Some(pattern) = resource.properties.get("EventPattern") else { continue };
        let pattern = serde_json::to_value(pattern).expect("an EventPattern is JSON");
        let targets = resource.properties.get("Targets").and_then(|t| t.as_sequence()).map_or_else(Vec::new, |t| {
            t.iter().filter_map(|t| t.get("Id").and_then(|id| id.as_str()).map(str::to_owned)).collect()
        });
        rules.push(Rule { consumer: id.to_owned(), rule: id.to_owned(), pattern, function: false, targets });
    }
    rules
}

/// The EventBridge event that carries `detail`, as a rule's target receives it.
fn delivered(contract: &Contract, detail: Value) -> EventBridgeEvent<Value> {
    serde_json::from_value(json!({
        "version": "0",
        "id": "5d1b7f3e-0c8a-4a5e-9f3b-00000000c0de",
        "detail-type": contract.name,
        "source": contract.source,
        "account": "123456789012",
        "time": "2026-11-27T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }))
    .unwrap()
}

fn rules_for<'a>(contract: &Contract, rules: &'a [Rule]) -> Vec<&'a Rule> {
    let document = serde_json::to_value(delivered(contract, contract.example.clone())).unwrap();
    rules.iter().filter(|r| local_host::matches(&r.pattern, &document)).collect()
}

fn asyncapi(contracts: &[Contract], rules: &[Rule]) -> Value {
    let mut channels = serde_json::Map::new();
    let mut operations = serde_json::Map::new();
    let mut messages = serde_json::Map::new();
    for c in contracts {
        let message_ref = json!({"$ref": format!("#/channels/{}/messages/{}", c.name, c.name)});
        let what = match c.kind {
            Kind::Event => "Domain event",
            Kind::Command => "Saga command (answered with the task token it carries)",
        };
        channels.insert(
            c.name.to_owned(),
            json!({
                "address": c.name,
                "title": c.name,
                "description": format!("{what} `{}` from `{}`: EventBridge `source` {} and `detail-type` {}; \
                                        the message is the event's `detail`.", c.name, c.source, c.source, c.name),
                "messages": {c.name: {"$ref": format!("#/components/messages/{}", c.name)}},
            }),
        );
        operations.insert(
            format!("publish{}", c.name),
            json!({
                "action": "send",
                "channel": {"$ref": format!("#/channels/{}", c.name)},
                "summary": format!("Published by the {}.", c.producer),
                "messages": [message_ref],
            }),
        );
        for rule in rules_for(c, rules) {
            let summary = if rule.function {
                format!("Rule {} delivers it to the function {}.", rule.rule, rule.consumer)
            } else {
                format!("Rule {} delivers it to its targets {}.", rule.rule, rule.targets.join(", "))
            };
            operations.insert(
                format!("{}.receive{}", rule.consumer, c.name),
                json!({
                    "action": "receive",
                    "channel": {"$ref": format!("#/channels/{}", c.name)},
                    "summary": summary,
                    "messages": [message_ref],
                }),
            );
        }
        messages.insert(
            c.name.to_owned(),
            json!({
                "name": c.name,
                "title": c.name,
                "contentType": "application/json",
                "payload": {
                    "schemaFormat": "application/schema+json;version=draft-07",
                    "schema": {"$ref": format!("./{}.schema.json", c.name)},
                },
                "examples": [{"name": "example", "payload": c.example}],
            }),
        );
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Shop event bus",
            "version": ENVELOPE_VERSION.to_string(),
            "description": "The one EventBridge bus of the shop: each service's domain events and the fulfilment \
                            saga's commands, each in the envelope of shared_core::envelope (the EventBridge `detail`). \
                            Consumers are tolerant readers: a field they do not know is ignored. Generated by \
                            infra/local-host/tests/integration/contracts.rs from the Rust types and template.yaml's rules.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "eventbridge": {
                "host": "events.{region}.amazonaws.com",
                "protocol": "https",
                "description": "The template's ShopEventBus, written with PutEvents.",
                "variables": {"region": {"default": "us-east-1"}},
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    })
}

/// Every file `infra/events/` should hold, by name.
fn generated() -> BTreeMap<String, String> {
    let contracts = contracts();
    let pretty = |value: &Value| serde_json::to_string_pretty(value).unwrap() + "\n";
    let mut files: BTreeMap<String, String> =
        contracts.iter().map(|c| (format!("{}.schema.json", c.name), pretty(&c.schema))).collect();
    files.insert("asyncapi.json".into(), pretty(&asyncapi(&contracts, &rules())));
    files
}

#[test]
fn the_checked_in_schemas_and_asyncapi_document_are_the_generated_ones() {
    let files = generated();
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::create_dir_all(events_dir()).unwrap();
        for entry in std::fs::read_dir(events_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                std::fs::remove_file(path).unwrap();
            }
        }
        for (name, text) in &files {
            std::fs::write(events_dir().join(name), text).unwrap();
        }
    }
    let on_disk: BTreeSet<String> = std::fs::read_dir(events_dir())
        .map(|dir| dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let expected: BTreeSet<String> = files.keys().cloned().collect();
    let fix = "review the change and run `UPDATE_SCHEMAS=1 cargo nextest run -p local-host contracts::`";
    assert_eq!(on_disk, expected, "infra/events/ does not hold exactly the generated files; {fix}");
    for (name, text) in &files {
        let disk = std::fs::read_to_string(events_dir().join(name)).unwrap();
        assert!(&disk == text, "infra/events/{name} is not what the code generates; {fix}");
    }
}

#[test]
fn every_schema_is_draft_07_with_its_example_and_the_envelope_fields_required() {
    for c in contracts() {
        let schema = &c.schema;
        assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#", "{}", c.name);
        assert_eq!(schema["examples"][0], c.example, "{}", c.name);
        let required: BTreeSet<&str> =
            schema["required"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        let mut envelope = BTreeSet::from([
            "event_id",
            "event_type",
            "aggregate_id",
            "occurred_at",
            "correlation_id",
            "version",
            "data",
        ]);
        if c.kind == Kind::Command {
            envelope.insert("task_token");
        }
        assert_eq!(required, envelope, "{}: what the reader cannot do without", c.name);
        assert!(schema["properties"].get("traceparent").is_some(), "{}: the optional traceparent is described", c.name);
        assert_ne!(schema.get("additionalProperties"), Some(&json!(false)), "{}: readers are tolerant", c.name);
        assert_eq!(c.example["event_type"], c.name);
    }
}

/// The answer a consumer gives to one delivery, each in a world where the example makes sense:
/// the order is pending, the product in stock, the provider charges. `Err` when it did not read
/// the event or refused to do it.
async fn feed(function: &str, event: EventBridgeEvent<Value>) -> Result<String, String> {
    let answer = |outcome: TaskOutcome| match outcome {
        TaskOutcome::Success(result) => Ok(result.to_string()),
        failure => Err(format!("{failure:?}")),
    };
    let reporter = InMemoryTaskReporter::new();
    match function {
        "OrdersSagaStarterFunction" => {
            let starter = orders::adapters::memory::InMemorySagaStarter::new();
            let settings = orders::saga::SagaSettings::default();
            let outcome = orders::saga::start_for_event(event, &starter, settings).await.map_err(|e| e.to_string())?;
            Ok(format!("{outcome:?}"))
        }
        "OrdersSagaWorkerFunction" => {
            use orders::domain::{Order, PlaceOrderRequest, RequestedItem};
            use orders::ports::OrderStore;
            use shared_core::OrderId;
            let store = Arc::new(orders::adapters::memory::InMemoryOrderStore::new());
            let request = PlaceOrderRequest {
                customer_id: "cust-42".into(),
                payment_method: "pm_card_visa".into(),
                items: vec![RequestedItem { sku: SKU.into(), quantity: 2 }],
            };
            let mut order = Order::place(request.validate().unwrap(), Utc::now());
            order.id = OrderId::parse(ORDER_ID).unwrap();
            store.create(&order, &[], None).await.unwrap();
            let worker = orders::saga::OrdersSagaWorker::new(orders::service::OrderService::new(store));
            answer(shared::aws::saga::dispatch(event, &worker, &reporter).await.map_err(|e| e.to_string())?)
        }
        "InventorySagaWorkerFunction" => {
            let service = stocked_inventory().await;
            let worker = inventory::saga::InventorySagaWorker::new(service);
            answer(shared::aws::saga::dispatch(event, &worker, &reporter).await.map_err(|e| e.to_string())?)
        }
        "InventoryOrderEventsFunction" => {
            let service = stocked_inventory().await;
            let lines = [inventory::domain::RequestedLine { sku: SKU.into(), quantity: 2 }];
            service
                .reserve(shared_core::OrderId::parse(ORDER_ID).unwrap(), &lines, &CorrelationId::generate())
                .await
                .unwrap();
            let consumed =
                inventory::order_events::consume_order_event(event, &service).await.map_err(|e| e.to_string())?;
            Ok(format!("{consumed:?}"))
        }
        "PaymentsSagaWorkerFunction" => {
            let store = Arc::new(payments::adapters::memory::InMemoryPaymentStore::new());
            let provider = Arc::new(payments::adapters::memory::ScriptedProvider::new());
            let service = payments::service::PaymentService::new(store, provider, Default::default());
            let worker = payments::saga::PaymentsSagaWorker::new(service);
            answer(shared::aws::saga::dispatch(event, &worker, &reporter).await.map_err(|e| e.to_string())?)
        }
        other => {
            Err(format!("{other} consumes from the bus but tests/integration/contracts.rs does not feed it: add it"))
        }
    }
}

async fn stocked_inventory() -> inventory::service::InventoryService {
    use inventory::domain::{ProductSpec, Restock};
    let service =
        inventory::service::InventoryService::new(Arc::new(inventory::adapters::memory::InMemoryInventoryStore::new()));
    let correlation = CorrelationId::generate();
    let spec = ProductSpec { name: "Red mug".into(), price: eur(1250), low_stock_threshold: 0 };
    service.put_product(SKU, &spec, &correlation).await.unwrap();
    service.restock(SKU, &Restock { restock_id: "r1".into(), quantity: 10 }, &correlation).await.unwrap();
    service
}

#[test]
fn every_message_type_reads_its_example_as_sent_and_widened() {
    for c in contracts() {
        assert_eq!((c.read)(&c.example), Ok(()), "{}", c.name);
        assert_eq!((c.read)(&widened(&c.example)), Ok(()), "{}: a field added anywhere is ignored", c.name);
    }
}

#[tokio::test]
async fn every_consumer_reads_every_example_it_is_subscribed_to_as_sent_and_widened() {
    let rules = rules();
    let mut fed = 0;
    for c in contracts() {
        for rule in rules_for(&c, &rules).into_iter().filter(|r| r.function) {
            for (how, detail) in [("as sent", c.example.clone()), ("widened", widened(&c.example))] {
                let answer = feed(&rule.consumer, delivered(&c, detail)).await;
                assert!(answer.is_ok(), "{} fed the {} example {how}: {answer:?}", rule.consumer, c.name);
                fed += 1;
            }
        }
    }
    // Today: OrderCreated (starter), six commands (three workers), two order outcomes (inventory).
    assert!(fed >= 18, "only {fed} deliveries: the template's rules were not read");
}

#[test]
fn every_rule_of_the_template_matches_a_contract_and_every_command_has_a_consumer() {
    let contracts = contracts();
    let rules = rules();
    for rule in &rules {
        assert!(
            contracts.iter().any(|c| rules_for(c, &rules).iter().any(|r| r.rule == rule.rule)),
            "rule {} matches no message of the catalogue: add its type to tests/integration/contracts.rs",
            rule.rule
        );
    }
    for c in contracts.iter().filter(|c| c.kind == Kind::Command) {
        let consumers: Vec<&str> =
            rules_for(c, &rules).iter().filter(|r| r.function).map(|r| r.consumer.as_str()).collect();
        assert_eq!(consumers.len(), 1, "{}: exactly one worker answers a command, not {consumers:?}", c.name);
    }
}

/// The `Detail` of each message the state machine publishes holds every field the schema
/// requires, in the envelope and in `data`, so the Rust reader and the ASL writer cannot drift.
#[test]
fn the_state_machines_write_every_field_the_schemas_require() {
    let contracts = contracts();
    let mut checked = BTreeSet::new();
    let mut states = Vec::new();
    for file in std::fs::read_dir(root().join("infra/statemachine")).unwrap() {
        let path = file.unwrap().path();
        if path.to_string_lossy().ends_with(".asl.json") {
            let asl: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            states.extend(
                asl["States"].as_object().unwrap().clone().into_iter().map(|(s, b)| (format!("{name} {s}"), b)),
            );
        }
    }
    for (state, body) in &states {
        let Some(entries) = body.pointer("/Parameters/Entries").and_then(Value::as_array) else { continue };
        for entry in entries {
            let detail_type = entry["DetailType"].as_str().unwrap();
            let c = contracts
                .iter()
                .find(|c| c.name == detail_type)
                .unwrap_or_else(|| panic!("{state} publishes {detail_type}, which has no contract"));
            assert_eq!(entry["Source"], c.source, "{state}");
            let keys = |value: &Value| -> BTreeSet<String> {
                value.as_object().unwrap().keys().map(|k| k.trim_end_matches(".$").to_owned()).collect()
            };
            let required = |schema: &Value| -> BTreeSet<String> {
                schema["required"]
                    .as_array()
                    .map_or_else(BTreeSet::new, |r| r.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            };
            let detail = &entry["Detail"];
            let missing: Vec<_> = required(&c.schema).difference(&keys(detail)).cloned().collect();
            assert!(missing.is_empty(), "{state}: the Detail lacks {missing:?}");
            let data_ref = c.schema["properties"]["data"]["$ref"].as_str().unwrap();
            let data_schema = c.schema.pointer(data_ref.trim_start_matches('#')).unwrap();
            let missing: Vec<_> = required(data_schema).difference(&keys(&detail["data"])).cloned().collect();
            assert!(missing.is_empty(), "{state}: the Detail's data lacks {missing:?}");
            checked.insert(detail_type.to_owned());
        }
    }
    let commands: BTreeSet<String> =
        contracts.iter().filter(|c| c.kind == Kind::Command).map(|c| c.name.to_owned()).collect();
    assert!(
        commands.is_subset(&checked),
        "commands the state machine never sends: {:?}",
        commands.difference(&checked)
    );
}

/// The whole shop on moto: an order placed in a trace (as the HTTP layer runs every request)
/// publishes `OrderCreated` with the trace's `traceparent`; the saga starter puts it in the saga
/// input, the state machine copies it into each command, and the workers publish their events in
/// it, so every message of the order on the bus is in the one trace.
#[tokio::test]
async fn one_trace_crosses_the_bus_from_the_order_to_every_command_and_event() {
    use local_host::{Host, HostConfig, Physical};
    let parameters = [
        ("SagaTaskTimeoutSeconds".to_owned(), "10".to_owned()),
        ("SagaPaymentTimeoutSeconds".to_owned(), "10".to_owned()),
    ];
    let config = HostConfig { http_port: 0, parameters: parameters.into(), ..HostConfig::default() };
    let host = Host::start(config).await.expect("the local system starts (moto is installed by `make setup`)");
    let Physical::Bus { name: bus } = host.resolver.physical("ShopEventBus").unwrap().clone() else {
        panic!("the shop bus")
    };
    let pattern = json!({"source": ["shop.orders", "shop.inventory", "shop.payments", "shop.saga"]});
    let tap = local_aws::EventTap::create(&host.moto, &bus, &local_aws::unique_name("traces"), &pattern).await.unwrap();

    let correlation = CorrelationId::generate();
    let inventory = inventory::entrypoints::build_service(&host.sdk, &host.env("InventoryApiFunction")).unwrap();
    let spec = inventory::domain::ProductSpec { name: "Red mug".into(), price: eur(1250), low_stock_threshold: 0 };
    inventory.put_product(SKU, &spec, &correlation).await.unwrap();
    let restock = inventory::domain::Restock { restock_id: "initial".into(), quantity: 10 };
    inventory.restock(SKU, &restock, &correlation).await.unwrap();
    let orders = orders::entrypoints::build_service(&host.sdk, &host.env("OrdersApiFunction")).unwrap();
    let request = orders::domain::PlaceOrderRequest {
        customer_id: "cust-1".into(),
        payment_method: "pm_card_visa".into(),
        items: vec![orders::domain::RequestedItem { sku: SKU.into(), quantity: 2 }],
    };
    let trace = shared_core::trace::TraceContext::parse(TRACEPARENT).unwrap().child();
    let placed = trace.scope(orders.place_order(request, &correlation, None)).await.unwrap().order;
    let id = placed.id.to_string();
    assert_eq!(host.wait_for_saga(&id, std::time::Duration::from_secs(60)).await.unwrap(), "SUCCEEDED");

    let expected = [
        "OrderCreated",
        "ReserveInventory",
        "InventoryReserved",
        "ProcessPayment",
        "PaymentCompleted",
        "ConfirmOrder",
        "OrderConfirmed",
    ];
    let seen = tap.receive(expected.len(), std::time::Duration::from_secs(20)).await.unwrap();
    let mut types: Vec<&str> = seen.iter().filter_map(|e| e["detail-type"].as_str()).collect();
    types.sort();
    let mut wanted = expected.to_vec();
    wanted.sort();
    assert_eq!(types, wanted, "every message of the order");
    let trace_id = trace.trace_id();
    for event in &seen {
        let traceparent = event["detail"]["traceparent"].as_str().unwrap_or_else(|| panic!("no traceparent: {event}"));
        let context = shared_core::trace::TraceContext::parse(traceparent).unwrap();
        assert_eq!(context.trace_id(), trace_id, "{} is in the order's trace", event["detail-type"]);
    }
    let created = seen.iter().find(|e| e["detail-type"] == "OrderCreated").unwrap();
    assert_eq!(created["detail"]["traceparent"], trace.traceparent(), "published by the request's span");
}
