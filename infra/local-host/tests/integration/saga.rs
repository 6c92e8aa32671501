//! The fulfilment saga on moto, which executes `infra/statemachine/fulfilment.asl.json` for
//! real (waitForTaskToken included). The workers are driven from the SQS queues that the
//! template's rules deliver to, exactly as their Lambda triggers would be. Each path checks the
//! three tables and the execution, not only the log.

use std::time::Duration;

use inventory::domain::{Money, ProductSpec, ReservationStatus, Restock};
use inventory::service::InventoryService;
use local_host::{Delivery, Host, HostConfig, Physical};
use orders::domain::{Order, OrderStatus, PlaceOrderRequest, RequestedItem};
use orders::saga::SagaSettings;
use orders::service::OrderService;
use payments::domain::PaymentStatus;
use payments::service::PaymentService;
use serde_json::Value;
use shared::aws::saga::TaskOutcome;
use shared_core::CorrelationId;

const SKU: &str = "SKU-MUG";
const PRICE: u64 = 1250;
const STOCK: u32 = 10;
const FINISH: Duration = Duration::from_secs(60);

/// The local host on any free port, with the services' stores to look into.
struct Stack {
    host: Host,
    orders: OrderService,
    inventory: InventoryService,
    payments: PaymentService,
}

impl std::ops::Deref for Stack {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.host
    }
}

async fn stack(settings: SagaSettings) -> Stack {
    stack_with(settings, &[], None).await
}

/// With variables over every function's environment, and another template.
async fn stack_with(settings: SagaSettings, env: &[(&str, &str)], template: Option<std::path::PathBuf>) -> Stack {
    let parameters = [
        ("SagaTaskTimeoutSeconds".to_owned(), settings.task_timeout_seconds.to_string()),
        ("SagaPaymentTimeoutSeconds".to_owned(), settings.payment_timeout_seconds.to_string()),
    ];
    let env_overrides = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let config =
        HostConfig { http_port: 0, parameters: parameters.into(), env_overrides, template, ..HostConfig::default() };
    let host = Host::start(config).await.expect("the local system starts (moto is installed by `make setup`)");
    let orders = orders::entrypoints::build_service(&host.sdk, &host.env("OrdersApiFunction")).unwrap();
    let inventory = inventory::entrypoints::build_service(&host.sdk, &host.env("InventoryApiFunction")).unwrap();
    let payments =
        payments::entrypoints::build_service(&host.sdk, &host.env("PaymentsSagaWorkerFunction")).await.unwrap();
    let stack = Stack { host, orders, inventory, payments };
    let correlation = CorrelationId::generate();
    let spec = ProductSpec { name: "Mug".into(), price: Money::new(PRICE, "EUR"), low_stock_threshold: 0 };
    stack.inventory.put_product(SKU, &spec, &correlation).await.unwrap();
    let restock = Restock { restock_id: "initial".into(), quantity: STOCK };
    stack.inventory.restock(SKU, &restock, &correlation).await.unwrap();
    stack
}

fn fast() -> SagaSettings {
    SagaSettings { task_timeout_seconds: 10, payment_timeout_seconds: 10 }
}

async fn place(stack: &Stack, quantity: u32, payment_method: &str) -> Order {
    place_with(stack, quantity, payment_method, &CorrelationId::generate()).await
}

async fn place_with(stack: &Stack, quantity: u32, payment_method: &str, correlation: &CorrelationId) -> Order {
    let request = PlaceOrderRequest {
        customer_id: "cust-1".into(),
        payment_method: payment_method.into(),
        items: vec![RequestedItem { sku: SKU.into(), quantity }],
    };
    stack.orders.place_order(request, correlation, None).await.unwrap().order
}

/// Everything the three services hold about an order after its saga.
#[derive(Debug)]
struct Outcome {
    execution: String,
    order: Order,
    reservation: Option<ReservationStatus>,
    payment: Option<PaymentStatus>,
    available: u64,
    states: Vec<String>,
}

async fn run(stack: &Stack, order: &Order) -> Outcome {
    let id = order.id.to_string();
    let execution = stack.wait_for_saga(&id, FINISH).await.unwrap();
    let failures: Vec<_> = stack.invocations().into_iter().filter(|i| i.outcome.is_err()).collect();
    assert!(failures.is_empty(), "every handler succeeded: {failures:#?}");
    Outcome {
        execution,
        order: stack.orders.get_order(order.id).await.unwrap(),
        reservation: stack.inventory.get_reservation(order.id).await.unwrap().map(|r| r.status),
        payment: stack.payments.get(order.id).await.unwrap().map(|p| p.status),
        available: stack.inventory.get_product(SKU).await.unwrap().available,
        states: stack.states_entered(&id).await.unwrap(),
    }
}

fn provider_requests(stack: &Stack) -> u64 {
    stack.simulator.simulator.stats().by_route.get("POST /v1/payment_intents").copied().unwrap_or(0)
}

#[tokio::test]
async fn happy_path_reserves_charges_confirms_and_commits_in_three_transitions() {
    let stack = stack(fast()).await;
    let order = place(&stack, 2, "pm_card_visa").await;
    let outcome = run(&stack, &order).await;
    assert_eq!(outcome.execution, "SUCCEEDED");
    assert_eq!(outcome.order.status, OrderStatus::Confirmed);
    assert_eq!(outcome.payment, Some(PaymentStatus::Captured));
    assert_eq!(outcome.reservation, Some(ReservationStatus::Committed), "inventory commits on OrderConfirmed");
    assert_eq!(outcome.available, u64::from(STOCK - 2));
    assert_eq!(outcome.states, ["ReserveInventory", "ProcessPayment", "ConfirmOrder"]);
    let payment = stack.payments.get(order.id).await.unwrap().unwrap();
    assert_eq!(payment.amount, Money::new(2 * PRICE, "EUR"), "the amount comes from the reservation");
    assert_eq!(provider_requests(&stack), 1);
}

#[tokio::test]
async fn a_redelivered_order_created_finds_the_existing_saga_instead_of_starting_a_second() {
    let stack = stack(fast()).await;
    let correlation = CorrelationId::generate();
    let order = place_with(&stack, 1, "pm_card_visa", &correlation).await;
    assert_eq!(run(&stack, &order).await.execution, "SUCCEEDED");

    // EventBridge delivers at least once: the same OrderCreated arrives again, after the saga
    // ended. A second saga could compensate the confirmed order; the named start prevents it.
    let entry = orders::events::order_created(&order, &correlation).entry;
    let event = serde_json::from_value(serde_json::json!({
        "source": entry.source, "detail-type": entry.detail_type,
        "detail": serde_json::from_str::<Value>(&entry.detail).unwrap(),
    }))
    .unwrap();
    let starter = orders::entrypoints::build_saga_starter(&stack.sdk, &stack.env("OrdersSagaStarterFunction")).unwrap();
    let again = starter.handle(event).await.unwrap();
    assert_eq!(
        again,
        orders::saga::StartOutcome::AlreadyStarted { execution_arn: stack.execution_arn(&order.id.to_string()) }
    );
    assert_eq!(stack.executions().await.unwrap(), [order.id.to_string()]);
    assert_eq!(stack.orders.get_order(order.id).await.unwrap().status, OrderStatus::Confirmed);
}

#[tokio::test]
async fn an_order_for_more_than_the_stock_is_cancelled_without_a_charge() {
    let stack = stack(fast()).await;
    let order = place(&stack, STOCK + 1, "pm_card_visa").await;
    let outcome = run(&stack, &order).await;
    assert_eq!(outcome.execution, "SUCCEEDED", "a cancelled order is a saga that did its job");
    assert_eq!(outcome.order.status, OrderStatus::Cancelled);
    assert_eq!(outcome.order.cancellation_reason.as_deref(), Some("InsufficientStock"));
    assert_eq!(outcome.reservation, Some(ReservationStatus::Rejected));
    assert_eq!(outcome.payment, None);
    assert_eq!(outcome.available, u64::from(STOCK));
    assert_eq!(outcome.states, ["ReserveInventory", "CancelOrder"]);
    assert_eq!(provider_requests(&stack), 0);
}

#[tokio::test]
async fn a_declined_payment_releases_the_stock_and_cancels_the_order() {
    let stack = stack(fast()).await;
    let order = place(&stack, 3, "pm_card_visa_chargeDeclinedInsufficientFunds").await;
    let outcome = run(&stack, &order).await;
    assert_eq!(outcome.execution, "SUCCEEDED");
    assert_eq!(outcome.order.status, OrderStatus::Cancelled);
    assert_eq!(outcome.order.cancellation_reason.as_deref(), Some("PaymentDeclined"));
    assert_eq!(outcome.payment, Some(PaymentStatus::Declined));
    assert_eq!(outcome.reservation, Some(ReservationStatus::Released));
    assert_eq!(outcome.available, u64::from(STOCK));
    assert_eq!(outcome.states, ["ReserveInventory", "ProcessPayment", "ReleaseInventory", "CancelOrder"]);
    assert_eq!(provider_requests(&stack), 1, "a decline is not retried");
}

#[tokio::test]
async fn a_confirmation_that_fails_after_the_charge_refunds_then_releases_then_cancels() {
    let stack = stack(fast()).await;
    stack.intercept(|command| match command {
        "ConfirmOrder" => Delivery::Answer(TaskOutcome::failure("OrderNotPending", "injected: confirmation refused")),
        _ => Delivery::Handle,
    });
    let order = place(&stack, 2, "pm_card_visa").await;
    let outcome = run(&stack, &order).await;
    assert_eq!(outcome.execution, "SUCCEEDED");
    assert_eq!(
        outcome.states,
        ["ReserveInventory", "ProcessPayment", "ConfirmOrder", "RefundPayment", "ReleaseInventory", "CancelOrder"],
        "compensations run in reverse order of what succeeded"
    );
    assert_eq!(outcome.payment, Some(PaymentStatus::Refunded));
    let intent = stack.payments.get(order.id).await.unwrap().unwrap().provider_payment_id.unwrap();
    assert_eq!(stack.simulator.simulator.refunded(&intent), 2 * PRICE, "exactly the captured amount");
    assert_eq!(outcome.reservation, Some(ReservationStatus::Released));
    assert_eq!(outcome.available, u64::from(STOCK));
    assert_eq!(outcome.order.status, OrderStatus::Cancelled);
    assert_eq!(outcome.order.cancellation_reason.as_deref(), Some("OrderNotPending"));
}

#[tokio::test]
async fn a_worker_that_never_answers_times_out_is_retried_then_compensated() {
    let stack = stack(SagaSettings { task_timeout_seconds: 10, payment_timeout_seconds: 2 }).await;
    stack.intercept(|command| if command == "ProcessPayment" { Delivery::Drop } else { Delivery::Handle });
    let order = place(&stack, 2, "pm_card_visa").await;
    let outcome = run(&stack, &order).await;
    assert_eq!(outcome.execution, "SUCCEEDED");
    let history = stack.history_types(&order.id.to_string()).await.unwrap();
    assert_eq!(
        history.iter().filter(|t| *t == "TaskTimedOut").count(),
        3,
        "the first try and two retries: {history:?}"
    );
    assert_eq!(outcome.order.status, OrderStatus::Cancelled);
    assert_eq!(outcome.order.cancellation_reason.as_deref(), Some("States.Timeout"));
    assert_eq!(outcome.payment, None, "the payments worker never saw the command");
    assert_eq!(outcome.reservation, Some(ReservationStatus::Released));
    assert_eq!(outcome.available, u64::from(STOCK));
    assert_eq!(
        outcome.states,
        ["ReserveInventory", "ProcessPayment", "RefundPayment", "ReleaseInventory", "CancelOrder"]
    );
}

#[tokio::test]
async fn every_command_delivered_twice_still_has_one_effect() {
    let stack = stack(fast()).await;
    stack.intercept(|_| Delivery::Twice);
    let order = place(&stack, 4, "pm_card_visa").await;
    let outcome = run(&stack, &order).await;
    assert_eq!(outcome.execution, "SUCCEEDED");
    assert_eq!(outcome.order.status, OrderStatus::Confirmed);
    assert_eq!(outcome.available, u64::from(STOCK - 4), "stock taken once");
    assert_eq!(outcome.reservation, Some(ReservationStatus::Committed));
    assert_eq!(outcome.payment, Some(PaymentStatus::Captured));
    let stats = stack.simulator.simulator.stats();
    assert_eq!((stats.payment_intents_created, stats.charges_succeeded), (1, 1), "charged once");
    let commands = stack.invocations().into_iter().filter(|i| i.binary.ends_with("saga-worker")).count();
    assert_eq!(commands, 6, "three commands, each handled twice");
}

#[tokio::test]
async fn a_compensation_that_fails_for_good_ends_in_compensation_failed_with_an_alert() {
    let stack = stack(fast()).await;
    let Physical::Bus { name: bus } = stack.resolver.physical("ShopEventBus").unwrap().clone() else {
        panic!("the shop bus")
    };
    let alerts = local_aws::EventTap::create(
        &stack.moto,
        &bus,
        &local_aws::unique_name("alerts"),
        &serde_json::json!({"source": ["shop.saga"], "detail-type": ["SagaCompensationFailed"]}),
    )
    .await
    .unwrap();
    stack.intercept(|command| match command {
        // A final error: retried twice (a worker's "final" may be a bug fixed by a deploy), not for
        // minutes as a transient one would be (see the next test and state_machine.rs).
        "ReleaseInventory" => Delivery::Answer(TaskOutcome::failure("InvalidCommand", "injected: unreadable command")),
        _ => Delivery::Handle,
    });
    let correlation = CorrelationId::generate();
    let order = place_with(&stack, 2, "pm_card_visa_chargeDeclined", &correlation).await;
    let id = order.id.to_string();
    let execution = stack.wait_for_saga(&id, FINISH).await.unwrap();
    assert_eq!(execution, "FAILED");
    let states = stack.states_entered(&id).await.unwrap();
    assert_eq!(
        states,
        [
            "ReserveInventory",
            "ProcessPayment",
            "ReleaseInventory",
            "ReleaseFailed",
            "CompensationFailed",
            "ParkOrder",
            "Failed"
        ]
    );

    let alert = alerts.receive(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(alert.len(), 1, "one alert");
    let data: &Value = &alert[0]["detail"]["data"];
    assert_eq!(data["order_id"], id.as_str());
    assert_eq!(data["execution_arn"], stack.execution_arn(&id).as_str());
    assert_eq!(data["compensation_error"]["Error"], "InvalidCommand");
    assert_eq!(data["saga_state"]["error"]["Error"], "PaymentDeclined", "what made the saga compensate");
    assert_eq!(alert[0]["detail"]["correlation_id"], correlation.as_str(), "the order's conversation, end to end");

    // Nothing was charged; the stock is still held and the order parked, visibly, with the reason
    // and what it still owes, until the sweeper's retry (15 minutes later by default).
    assert_eq!(stack.payments.get(order.id).await.unwrap().unwrap().status, PaymentStatus::Declined);
    assert_eq!(stack.inventory.get_reservation(order.id).await.unwrap().unwrap().status, ReservationStatus::Reserved);
    let parked = stack.orders.get_order(order.id).await.unwrap();
    assert_eq!(parked.status, OrderStatus::CompensationPending);
    let parking = parked.parking.unwrap();
    assert_eq!((parking.failed_step.as_str(), parking.error.as_str()), ("ReleaseInventory", "InvalidCommand"));
    assert_eq!(parking.cause, "injected: unreadable command");
    assert_eq!(parking.owed, orders::parking::Owed { refund_payment: false, release_inventory: true });
    assert_eq!(parking.reason, "PaymentDeclined", "why the order is being cancelled at all");
    assert_eq!(parking.attempts, 1);
    let wait = (parking.next_attempt_at - parking.parked_at).num_seconds();
    assert!((899..=900).contains(&wait), "first retry after 15 minutes, not {wait} s");
    let released = stack.invocations().into_iter().filter(|i| i.trigger == "ReleaseInventory").count();
    assert_eq!(released, 3, "the compensation was tried and retried twice");
}

#[tokio::test]
async fn a_compensation_that_fails_transiently_is_retried_until_it_succeeds() {
    let stack = stack(fast()).await;
    let failures = std::sync::atomic::AtomicUsize::new(0);
    stack.intercept(move |command| match command {
        // The inventory table throttles the first three tries (delays of at most 2, 4, 8 s).
        "ReleaseInventory" if failures.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3 => {
            Delivery::Answer(TaskOutcome::transient("injected: inventory table throttled"))
        }
        _ => Delivery::Handle,
    });
    let order = place(&stack, 2, "pm_card_visa_chargeDeclined").await;
    let outcome = run(&stack, &order).await;
    assert_eq!(outcome.execution, "SUCCEEDED", "the compensation outlasted the outage");
    assert_eq!(outcome.states, ["ReserveInventory", "ProcessPayment", "ReleaseInventory", "CancelOrder"]);
    assert_eq!(outcome.order.status, OrderStatus::Cancelled);
    assert_eq!(outcome.order.cancellation_reason.as_deref(), Some("PaymentDeclined"));
    assert_eq!(outcome.reservation, Some(ReservationStatus::Released));
    assert_eq!(outcome.available, u64::from(STOCK));
    let released = stack.invocations().into_iter().filter(|i| i.trigger == "ReleaseInventory").count();
    assert_eq!(released, 4, "three failures, then the release");
}

#[tokio::test]
async fn a_confirmation_done_by_a_worker_that_died_before_answering_is_found_done_and_the_saga_succeeds() {
    let stack = stack(SagaSettings { task_timeout_seconds: 4, payment_timeout_seconds: 10 }).await;
    let placed = std::sync::Arc::new(std::sync::OnceLock::<shared_core::OrderId>::new());
    let confirms = std::sync::atomic::AtomicUsize::new(0);
    let (orders, order_id) = (stack.orders.clone(), placed.clone());
    stack.intercept(move |command| {
        if command != "ConfirmOrder" || confirms.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
            return Delivery::Handle;
        }
        // The first ConfirmOrder is done, and its answer never sent: the saga times out and
        // sends the command again.
        let Some(id) = order_id.get().copied() else { return Delivery::Handle };
        let orders = orders.clone();
        tokio::spawn(async move { orders.confirm(id, &CorrelationId::generate()).await.unwrap() });
        Delivery::Drop
    });
    let order = place(&stack, 2, "pm_card_visa").await;
    placed.set(order.id).unwrap();
    let outcome = run(&stack, &order).await;
    assert_eq!(outcome.execution, "SUCCEEDED", "the retried confirmation found the order confirmed");
    assert_eq!(outcome.states, ["ReserveInventory", "ProcessPayment", "ConfirmOrder"]);
    let history = stack.history_types(&order.id.to_string()).await.unwrap();
    assert_eq!(history.iter().filter(|t| *t == "TaskTimedOut").count(), 1, "{history:?}");
    assert_eq!(outcome.order.status, OrderStatus::Confirmed);
    assert_eq!(outcome.payment, Some(PaymentStatus::Captured), "no refund: nothing was compensated");
    assert_eq!(outcome.reservation, Some(ReservationStatus::Committed));
}

/// A copy of template.yaml whose state machines retry `RefundPayment` once, briefly: a refund
/// that cannot succeed for longer than its retry budget, without waiting out the real budget
/// (minutes; state_machine.rs checks it against the breaker). Nothing else changes.
fn template_with_a_short_refund_budget() -> std::path::PathBuf {
    let root = local_aws::project_root();
    let dir = std::env::temp_dir().join(local_aws::unique_name("short-refund"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut template = std::fs::read_to_string(root.join("template.yaml")).unwrap();
    for machine in ["fulfilment", "compensate"] {
        let file = format!("infra/statemachine/{machine}.asl.json");
        let mut asl: Value = serde_json::from_str(&std::fs::read_to_string(root.join(&file)).unwrap()).unwrap();
        for retry in asl["States"]["RefundPayment"]["Retry"].as_array_mut().unwrap() {
            retry["MaxAttempts"] = 1.into();
            retry["IntervalSeconds"] = 1.into();
            retry["MaxDelaySeconds"] = 1.into();
        }
        let copy = dir.join(format!("{machine}.asl.json"));
        std::fs::write(&copy, asl.to_string()).unwrap();
        let declared = format!("DefinitionUri: {file}");
        assert!(template.contains(&declared), "{declared}");
        template = template.replace(&declared, &format!("DefinitionUri: {}", copy.display()));
    }
    let path = dir.join("template.yaml");
    std::fs::write(&path, template).unwrap();
    path
}

/// Fast enough for a test: the first retry of a parked order after 2 s, at most 4 s apart (the
/// host's schedule runs the sweeper every 3 s); the provider client gives up within 2 s and its
/// breaker reopens after 1 s.
const FAST_PARKING: [(&str, &str); 5] = [
    ("COMPENSATION_RETRY_FIRST_SECONDS", "2"),
    ("COMPENSATION_RETRY_MAX_SECONDS", "4"),
    ("PAYMENT_PROVIDER_TIMEOUT_MS", "2000"),
    ("PAYMENT_PROVIDER_ATTEMPT_TIMEOUT_MS", "1000"),
    ("PAYMENT_PROVIDER_BREAKER_OPEN_MS", "1000"),
];

async fn wait_for_order(stack: &Stack, order: &Order, until: impl Fn(&Order) -> bool) -> Order {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let current = stack.orders.get_order(order.id).await.unwrap();
        if until(&current) {
            return current;
        }
        assert!(std::time::Instant::now() < deadline, "the order never got there: {current:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_refund_the_provider_refuses_past_its_budget_parks_the_order_and_the_sweeper_finishes_it_once_it_recovers() {
    let stack = stack_with(fast(), &FAST_PARKING, Some(template_with_a_short_refund_budget())).await;
    let simulator = stack.simulator.simulator.clone();
    // Charged, then the confirmation fails and the provider goes away before the refund.
    stack.intercept(move |command| match command {
        "ConfirmOrder" => {
            simulator.set_faults(payment_provider_sim::Faults { down: true, ..Default::default() }).unwrap();
            Delivery::Answer(TaskOutcome::failure("OrderNotPending", "injected: confirmation refused"))
        }
        _ => Delivery::Handle,
    });
    let order = place(&stack, 2, "pm_card_visa").await;
    let id = order.id.to_string();
    assert_eq!(stack.wait_for_saga(&id, FINISH).await.unwrap(), "FAILED");
    assert_eq!(
        stack.states_entered(&id).await.unwrap(),
        [
            "ReserveInventory",
            "ProcessPayment",
            "ConfirmOrder",
            "RefundPayment",
            "RefundFailed",
            "CompensationFailed",
            "ParkOrder",
            "Failed"
        ]
    );
    // Parked, visibly, holding the money and the stock: one of the documented intermediate states.
    let parked = stack.orders.get_order(order.id).await.unwrap();
    assert_eq!(parked.status, OrderStatus::CompensationPending);
    let parking = parked.parking.clone().unwrap();
    assert_eq!((parking.failed_step.as_str(), parking.error.as_str()), ("RefundPayment", "Transient"));
    assert_eq!(parking.owed, orders::parking::Owed::ALL);
    assert_eq!(stack.payments.get(order.id).await.unwrap().unwrap().status, PaymentStatus::Captured);
    assert_eq!(stack.inventory.get_reservation(order.id).await.unwrap().unwrap().status, ReservationStatus::Reserved);

    // The sweeper retries while the provider is still down: the attempt fails and re-parks.
    let retried = wait_for_order(&stack, &order, |o| o.parking.as_ref().is_some_and(|p| p.attempts >= 3)).await;
    assert_eq!(retried.status, OrderStatus::CompensationPending);
    let failed = stack.compensation_executions().await.unwrap();
    assert!(failed.iter().any(|(name, status)| *name == format!("{id}-2") && status == "FAILED"), "{failed:?}");

    // The provider recovers: the next retry refunds, releases and cancels.
    stack.simulator.simulator.set_faults(payment_provider_sim::Faults::default()).unwrap();
    let cancelled = wait_for_order(&stack, &order, |o| o.status != OrderStatus::CompensationPending).await;
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(cancelled.cancellation_reason.as_deref(), Some("OrderNotPending"), "the saga's reason");
    let payment = stack.payments.get(order.id).await.unwrap().unwrap();
    assert_eq!(payment.status, PaymentStatus::Refunded);
    assert_eq!(stack.simulator.simulator.refunded(payment.provider_payment_id.as_deref().unwrap()), 2 * PRICE);
    assert_eq!(stack.inventory.get_reservation(order.id).await.unwrap().unwrap().status, ReservationStatus::Released);
    assert_eq!(stack.inventory.get_product(SKU).await.unwrap().available, u64::from(STOCK));
    // One execution per attempt, the last one succeeded, none left running.
    let deadline = std::time::Instant::now() + FINISH;
    let executions = loop {
        let executions = stack.compensation_executions().await.unwrap();
        if executions.iter().all(|(_, s)| s != "RUNNING") || std::time::Instant::now() > deadline {
            break executions;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let attempts = cancelled.parking.unwrap().attempts;
    let succeeded: Vec<_> = executions.iter().filter(|(_, s)| s == "SUCCEEDED").map(|(n, _)| n.clone()).collect();
    assert_eq!(succeeded, [format!("{id}-{attempts}")], "{executions:?}");
    assert_eq!(executions.len() as u32, attempts - 1, "attempts 2..={attempts}, one execution each: {executions:?}");
}

#[tokio::test]
async fn an_order_whose_parking_failed_too_is_found_by_the_sweeper_after_its_saga_and_cancelled() {
    let env = [("SAGA_MAX_DURATION_SECONDS", "1"), FAST_PARKING[0], FAST_PARKING[1]];
    let stack = stack_with(fast(), &env, None).await;
    let broken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let still_broken = broken.clone();
    stack.intercept(move |command| match command {
        // The release fails for good, and so does parking (the bus, say): the saga ends FAILED
        // with the order PENDING and nobody else to finish it. Parking stays broken: a command
        // delivered twice (at least once, as EventBridge does) would otherwise park the order
        // from its late copy, and the sweeper would never have to find it.
        "ReleaseInventory" if still_broken.load(std::sync::atomic::Ordering::SeqCst) => {
            Delivery::Answer(TaskOutcome::failure("InvalidCommand", "injected: cannot be done"))
        }
        "ParkOrder" => Delivery::Answer(TaskOutcome::failure("InvalidCommand", "injected: cannot be done")),
        _ => Delivery::Handle,
    });
    let order = place(&stack, 2, "pm_card_visa_chargeDeclined").await;
    let id = order.id.to_string();
    assert_eq!(stack.wait_for_saga(&id, FINISH).await.unwrap(), "FAILED");
    let states = stack.states_entered(&id).await.unwrap();
    assert_eq!(states.last().map(String::as_str), Some("ParkingFailed"), "{states:?}");
    broken.store(false, std::sync::atomic::Ordering::SeqCst);

    // Past the saga's longest run with its execution ended, the sweeper adopts the order, owing
    // everything, and its compensation releases the stock and cancels.
    let cancelled = wait_for_order(&stack, &order, |o| o.status == OrderStatus::Cancelled).await;
    assert_eq!(cancelled.cancellation_reason.as_deref(), Some("SagaAbandoned"));
    let parking = cancelled.parking.unwrap();
    assert_eq!((parking.failed_step.as_str(), parking.error.as_str()), ("Saga", "SagaEnded"));
    assert_eq!(parking.owed, orders::parking::Owed::ALL);
    assert_eq!(
        stack.payments.get(order.id).await.unwrap().unwrap().status,
        PaymentStatus::Declined,
        "nothing to refund"
    );
    assert_eq!(stack.inventory.get_reservation(order.id).await.unwrap().unwrap().status, ReservationStatus::Released);
    assert_eq!(stack.inventory.get_product(SKU).await.unwrap().available, u64::from(STOCK));
}

/// The operator's retry: the sweeper invoked with `{"order_id": ...}` starts the parked order's
/// next attempt now, 15 minutes before the schedule would.
#[tokio::test]
async fn an_operator_retry_finishes_a_parked_order_before_its_next_attempt_is_due() {
    let stack = stack(fast()).await;
    let broken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let still_broken = broken.clone();
    stack.intercept(move |command| match command {
        "ReleaseInventory" if still_broken.load(std::sync::atomic::Ordering::SeqCst) => {
            Delivery::Answer(TaskOutcome::failure("InvalidCommand", "injected: cannot be done"))
        }
        _ => Delivery::Handle,
    });
    let order = place(&stack, 2, "pm_card_visa_chargeDeclined").await;
    let id = order.id.to_string();
    assert_eq!(stack.wait_for_saga(&id, FINISH).await.unwrap(), "FAILED");
    assert_eq!(stack.orders.get_order(order.id).await.unwrap().status, OrderStatus::CompensationPending);
    broken.store(false, std::sync::atomic::Ordering::SeqCst);

    let sweeper =
        orders::entrypoints::build_sweeper(&stack.sdk, &stack.env("OrdersCompensationSweeperFunction")).unwrap();
    let answer = orders::entrypoints::invoke_sweeper(&sweeper, serde_json::json!({ "order_id": id })).await.unwrap();
    assert_eq!(answer["started"], serde_json::json!([[id, 2]]), "{answer}");
    let cancelled = wait_for_order(&stack, &order, |o| o.status == OrderStatus::Cancelled).await;
    assert_eq!(cancelled.cancellation_reason.as_deref(), Some("PaymentDeclined"));
    assert_eq!(stack.inventory.get_reservation(order.id).await.unwrap().unwrap().status, ReservationStatus::Released);
    assert_eq!(stack.inventory.get_product(SKU).await.unwrap().available, u64::from(STOCK));
}
