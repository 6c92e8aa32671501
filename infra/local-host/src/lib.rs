//! Plays Lambda for the shop on one machine: provisions moto from `template.yaml` and the state
//! machine's ASL file, and hands what the template's triggers would deliver to each function's
//! handler, in-process.
//!
//! What is read from the template rather than written here: the tables (keys, indexes, streams),
//! the state machine definition with its `DefinitionSubstitutions`, and every EventBridge rule
//! that invokes a function (its pattern). Locally each such rule targets an SQS queue (moto
//! cannot invoke Lambda), and [`Stack::pump`] delivers the queue's events to the handler of the
//! function the rule belongs to, chosen by the function's binary name.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use inventory::service::InventoryService;
use local_aws::{EventTap, FunctionRule, Moto, StreamReader, Template, referenced, unique_name};
use orders::adapters::stepfunctions::StepFunctionsSagaStarter;
use orders::saga::SagaSettings;
use orders::service::OrderService;
use payment_provider_sim::{RunningSimulator, Simulator, SimulatorConfig};
use payments::service::{LeaseConfig, PaymentService};
use serde_json::Value;
use shared::publisher::EventBridgePublisher;
use shared::resilience::ServiceClientConfig;
use shared::saga::{SfnTaskReporter, TaskOutcome, TaskReporter};

pub const STATE_MACHINE: &str = "FulfilmentStateMachine";
const PROVIDER_KEY: &str = "sk_test_local_host";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    LocalAws(#[from] local_aws::Error),
    #[error("{0}")]
    Setup(String),
}

fn setup<E: std::fmt::Display>(context: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::Setup(format!("{context}: {e}"))
}

/// What to do with a saga command instead of simply delivering it (fault injection in tests
/// and in the demo).
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Handle,
    /// Lost: the worker never sees it, the saga waits until its timeout.
    Drop,
    /// Delivered twice, as EventBridge may.
    Twice,
    /// The worker is bypassed and the saga gets this answer.
    Answer(TaskOutcome),
}

type Interceptor = Box<dyn Fn(&str) -> Delivery + Send + Sync>;

/// One delivery to a function, for timelines and assertions.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub binary: String,
    /// `detail-type` of the event, or `stream` for a table stream batch.
    pub trigger: String,
    pub order_id: Option<String>,
    /// `Ok` with the saga's answer for commands, or `Err` with the handler's error.
    pub outcome: Result<Option<TaskOutcome>, String>,
}

/// The names of what was provisioned.
#[derive(Debug, Clone)]
pub struct Names {
    pub tables: BTreeMap<String, String>,
    pub bus: String,
    pub state_machine_arn: String,
}

pub struct Stack {
    pub moto: Moto,
    pub simulator: RunningSimulator,
    pub names: Names,
    pub orders: OrderService,
    pub inventory: InventoryService,
    pub payments: PaymentService,
    pub settings: SagaSettings,
    rules: Vec<(FunctionRule, String, EventTap)>,
    orders_stream: tokio::sync::Mutex<StreamReader>,
    publisher: EventBridgePublisher,
    starter: StepFunctionsSagaStarter,
    reporter: SfnTaskReporter,
    orders_worker: orders::saga::OrdersSagaWorker,
    inventory_worker: inventory::saga::InventorySagaWorker,
    payments_worker: payments::saga::PaymentsSagaWorker,
    sfn: aws_sdk_sfn::Client,
    interceptor: Mutex<Option<Interceptor>>,
    invocations: Mutex<Vec<Invocation>>,
}

/// The binary a function runs (`Metadata.BuildProperties.Binary`).
fn binary_of(template: &Template, function: &str) -> Result<String, Error> {
    let resource = template.resource(function)?;
    resource
        .metadata
        .get("BuildProperties")
        .and_then(|p| p.get("Binary"))
        .and_then(|b| b.as_str())
        .map(str::to_owned)
        .ok_or_else(|| Error::Setup(format!("{function} names no Binary in Metadata.BuildProperties")))
}

impl Stack {
    /// Starts moto and the payment provider simulator, and provisions everything from the
    /// project's template.
    pub async fn start(settings: SagaSettings) -> Result<Self, Error> {
        let moto = Moto::start().await?;
        let template = Template::load_project()?;
        let config = moto.sdk_config();

        let mut tables = BTreeMap::new();
        for (logical_id, _) in template.resources_of_type("AWS::DynamoDB::Table") {
            let name = moto.create_table(&template.table(logical_id)?, &unique_name(logical_id)).await?;
            tables.insert(logical_id.to_owned(), name);
        }
        let bus = moto.create_bus(&unique_name("shop")).await?;
        let machine = template.state_machine(STATE_MACHINE)?;
        let definition = machine.definition(|_, value| match referenced(value) {
            Some("ShopEventBus") => Some(bus.clone()),
            _ => None,
        })?;
        let state_machine_arn = moto.create_state_machine(&unique_name("fulfilment"), &definition).await?;

        let mut rules = Vec::new();
        for rule in template.event_rules()? {
            let binary = binary_of(&template, &rule.function)?;
            let name = unique_name(&format!("{}-{}", rule.function, rule.event));
            let tap = EventTap::create(&moto, &bus, &name, &rule.pattern).await?;
            rules.push((rule, binary, tap));
        }

        let table = |id: &str| tables.get(id).cloned().ok_or_else(|| Error::Setup(format!("no table {id}")));
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let orders = OrderService::new(Arc::new(orders::adapters::dynamodb::DynamoDbOrderStore::new(
            dynamodb.clone(),
            table("OrdersTable")?,
        )));
        let inventory = InventoryService::new(Arc::new(inventory::adapters::dynamodb::DynamoDbInventoryStore::new(
            dynamodb.clone(),
            table("InventoryTable")?,
        )));
        let simulator = Simulator::new(SimulatorConfig { api_key: PROVIDER_KEY.into(), ..SimulatorConfig::default() })
            .map_err(setup("simulator"))?
            .spawn(0)
            .await
            .map_err(setup("simulator"))?;
        let provider_vars = BTreeMap::from([
            ("PAYMENT_PROVIDER_BASE_URL".to_owned(), simulator.base_url()),
            ("PAYMENT_PROVIDER_ATTEMPT_TIMEOUT_MS".to_owned(), "1000".to_owned()),
            ("PAYMENT_PROVIDER_TIMEOUT_MS".to_owned(), "3000".to_owned()),
            ("PAYMENT_PROVIDER_RETRY_BASE_DELAY_MS".to_owned(), "20".to_owned()),
        ]);
        let provider_config = ServiceClientConfig::from_lookup("PAYMENT_PROVIDER", |n| provider_vars.get(n).cloned())
            .map_err(setup("provider configuration"))?;
        let provider = payments::adapters::stripe::StripeProvider::new(
            &provider_config,
            payments::adapters::stripe::ApiKey::new(PROVIDER_KEY),
        )
        .map_err(setup("provider"))?;
        let payments = PaymentService::new(
            Arc::new(payments::adapters::dynamodb::DynamoDbPaymentStore::new(dynamodb, table("PaymentsTable")?)),
            Arc::new(provider),
            LeaseConfig { duration: Duration::from_secs(8), poll_interval: Duration::from_millis(50) },
        );

        let orders_stream = StreamReader::for_table(&moto, &table("OrdersTable")?).await?;
        let sfn = aws_sdk_sfn::Client::new(&config);
        Ok(Self {
            publisher: EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&config), &bus),
            starter: StepFunctionsSagaStarter::new(sfn.clone(), &state_machine_arn),
            reporter: SfnTaskReporter::new(sfn.clone()),
            orders_worker: orders::saga::OrdersSagaWorker::new(orders.clone()),
            inventory_worker: inventory::saga::InventorySagaWorker::new(inventory.clone()),
            payments_worker: payments::saga::PaymentsSagaWorker::new(payments.clone()),
            names: Names { tables, bus, state_machine_arn },
            orders,
            inventory,
            payments,
            settings,
            rules,
            orders_stream: tokio::sync::Mutex::new(orders_stream),
            sfn,
            simulator,
            moto,
            interceptor: Mutex::new(None),
            invocations: Mutex::new(Vec::new()),
        })
    }

    /// Decides, per command type, how each saga command is delivered from now on.
    pub fn intercept(&self, interceptor: impl Fn(&str) -> Delivery + Send + Sync + 'static) {
        *self.interceptor.lock().unwrap() = Some(Box::new(interceptor));
    }

    /// The saga starter the `OrderCreated` rule's function uses.
    pub fn starter(&self) -> &StepFunctionsSagaStarter {
        &self.starter
    }

    /// Names of every execution of the state machine.
    pub async fn executions(&self) -> Result<Vec<String>, Error> {
        let page = self
            .sfn
            .list_executions()
            .state_machine_arn(&self.names.state_machine_arn)
            .send()
            .await
            .map_err(setup("ListExecutions"))?;
        Ok(page.executions().iter().map(|e| e.name().to_owned()).collect())
    }

    pub fn invocations(&self) -> Vec<Invocation> {
        self.invocations.lock().unwrap().clone()
    }

    /// The execution of an order's saga (executions are named after the order).
    pub fn execution_arn(&self, order_id: &str) -> String {
        format!("{}:{order_id}", self.names.state_machine_arn.replacen(":stateMachine:", ":execution:", 1))
    }

    /// One round of delivery: the orders table stream to the bus (its outbox relay), then every
    /// rule's waiting events to their function. Returns how many deliveries were made.
    pub async fn pump(&self) -> Result<usize, Error> {
        let mut delivered = 0;
        let batch = self.orders_stream.lock().await.poll_event().await?;
        if !batch.records.is_empty() {
            let response = shared::outbox::relay(batch, &self.publisher).await;
            if !response.batch_item_failures.is_empty() {
                return Err(Error::Setup(format!("orders relay failed: {:?}", response.batch_item_failures)));
            }
            delivered += 1;
        }
        for (rule, binary, tap) in &self.rules {
            for raw in tap.poll().await? {
                let event: EventBridgeEvent<Value> = serde_json::from_value(raw)
                    .map_err(setup(&format!("an event for {} is not an EventBridge event", rule.function)))?;
                self.deliver(binary, event).await;
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    async fn deliver(&self, binary: &str, event: EventBridgeEvent<Value>) {
        let trigger = event.detail_type.clone();
        let order_id = event.detail.get("aggregate_id").and_then(Value::as_str).map(str::to_owned);
        let delivery = match self.interceptor.lock().unwrap().as_ref() {
            Some(decide) if event.source == shared::saga::COMMAND_SOURCE => decide(&trigger),
            _ => Delivery::Handle,
        };
        let times = match delivery {
            Delivery::Drop => 0,
            Delivery::Twice => 2,
            Delivery::Handle => 1,
            Delivery::Answer(outcome) => {
                let token = event.detail.get("task_token").and_then(Value::as_str).unwrap_or_default();
                let result =
                    self.reporter.report(token, &outcome).await.map(|_| Some(outcome)).map_err(|e| e.to_string());
                self.record(binary, &trigger, order_id.clone(), result);
                0
            }
        };
        for _ in 0..times {
            let result = self.invoke(binary, event.clone()).await;
            if let Err(error) = &result {
                tracing::error!(binary, trigger, error, "handler failed");
            }
            self.record(binary, &trigger, order_id.clone(), result);
        }
    }

    fn record(
        &self,
        binary: &str,
        trigger: &str,
        order_id: Option<String>,
        outcome: Result<Option<TaskOutcome>, String>,
    ) {
        self.invocations.lock().unwrap().push(Invocation {
            binary: binary.to_owned(),
            trigger: trigger.to_owned(),
            order_id,
            outcome,
        });
    }

    /// Runs the handler of `binary` on `event`, as its Lambda would.
    async fn invoke(&self, binary: &str, event: EventBridgeEvent<Value>) -> Result<Option<TaskOutcome>, String> {
        let worker: &dyn shared::saga::CommandHandler = match binary {
            "orders-saga-worker" => &self.orders_worker,
            "inventory-saga-worker" => &self.inventory_worker,
            "payments-saga-worker" => &self.payments_worker,
            _ => return self.invoke_other(binary, event).await,
        };
        shared::saga::dispatch(event, worker, &self.reporter).await.map(Some).map_err(|e| e.to_string())
    }

    async fn invoke_other(&self, binary: &str, event: EventBridgeEvent<Value>) -> Result<Option<TaskOutcome>, String> {
        match binary {
            "orders-saga-starter" => orders::saga::start_for_event(event, &self.starter, self.settings)
                .await
                .map(|_| None)
                .map_err(|e| e.to_string()),
            "inventory-order-events" => inventory::saga::consume_order_event(event, &self.inventory)
                .await
                .map(|_| None)
                .map_err(|e| e.to_string()),
            other => Err(format!("no local handler for the binary {other}")),
        }
    }

    /// Pumps until the order's saga has finished and nothing is left to deliver, or `timeout`.
    /// Returns the execution's status (`SUCCEEDED`, `FAILED`, ...).
    pub async fn run_until_finished(&self, order_id: &str, timeout: Duration) -> Result<String, Error> {
        let deadline = Instant::now() + timeout;
        let arn = self.execution_arn(order_id);
        loop {
            let delivered = self.pump().await?;
            let status = match self.sfn.describe_execution().execution_arn(&arn).send().await {
                Ok(execution) => Some(execution.status.as_str().to_owned()),
                Err(_) => None, // not started yet
            };
            if let Some(status) = status.filter(|s| s != "RUNNING")
                && delivered == 0
            {
                // One more round for what the last steps published (OrderConfirmed, ...).
                tokio::time::sleep(Duration::from_millis(200)).await;
                if self.pump().await? == 0 {
                    return Ok(status);
                }
                continue;
            }
            if Instant::now() > deadline {
                return Err(Error::Setup(format!("the saga of order {order_id} did not finish in {timeout:?}")));
            }
            if delivered == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// The names of the states the order's execution entered, in order, and how many state
    /// transitions it was billed (states entered).
    pub async fn states_entered(&self, order_id: &str) -> Result<Vec<String>, Error> {
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .sfn
                .get_execution_history()
                .execution_arn(self.execution_arn(order_id))
                .set_next_token(token)
                .send()
                .await
                .map_err(setup("GetExecutionHistory"))?;
            for event in page.events() {
                if let Some(details) = event.state_entered_event_details() {
                    names.push(details.name().to_owned());
                }
            }
            token = page.next_token;
            if token.is_none() {
                return Ok(names);
            }
        }
    }

    /// The raw execution history event types (`TaskScheduled`, `TaskTimedOut`, ...).
    pub async fn history_types(&self, order_id: &str) -> Result<Vec<String>, Error> {
        let page = self
            .sfn
            .get_execution_history()
            .execution_arn(self.execution_arn(order_id))
            .max_results(1000)
            .send()
            .await
            .map_err(setup("GetExecutionHistory"))?;
        Ok(page.events().iter().map(|e| e.r#type().as_str().to_owned()).collect())
    }
}
