//! The local host: provisions moto from the template and runs every function on its triggers.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_lambda_events::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use local_aws::{EventTap, Moto, StreamReader, Template, unique_name};
use payment_provider_sim::{RunningSimulator, Simulator, SimulatorConfig};
use serde_json::Value;
use serde_norway::Value as Yaml;
use shared::saga::{SfnTaskReporter, TaskReporter};
use tokio::task::JoinHandle;

use crate::functions::{EventFunction, Handler, build};
use crate::http::{Route, serve};
use crate::resolve::{Physical, Resolver};
use crate::{Delivery, Error, Invocation, setup};

/// The parameter that points functions at the payment provider: locally, the simulator.
const PROVIDER_URL_PARAMETER: &str = "PaymentProviderBaseUrl";
/// The secret holding the provider's API key: the simulator accepts the key generated into it.
const PROVIDER_SECRET: &str = "PaymentProviderSecret";
/// Lambda retries a stream batch until the records expire; locally that many times, then the
/// batch goes to the trigger's on-failure destination.
const LOCAL_STREAM_RETRIES: u32 = 10;

#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The HTTP APIs' port on 127.0.0.1 (0: any free port).
    pub http_port: u16,
    /// Use this moto instead of starting one (`AWS_ENDPOINT_URL` in `make local`).
    pub moto_endpoint: Option<String>,
    pub template: Option<std::path::PathBuf>,
    /// Parameter values over the template's defaults.
    pub parameters: BTreeMap<String, String>,
    /// Variables added to every function's environment (e.g. a shorter breaker wait in the demo).
    pub env_overrides: BTreeMap<String, String>,
    /// Print one line per invocation.
    pub log_invocations: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            http_port: 3000,
            moto_endpoint: None,
            template: None,
            parameters: BTreeMap::new(),
            env_overrides: BTreeMap::new(),
            log_invocations: false,
        }
    }
}

type Interceptor = Box<dyn Fn(&str) -> Delivery + Send + Sync>;

/// What the background tasks share.
pub(crate) struct Shared {
    interceptor: Mutex<Option<Interceptor>>,
    invocations: Mutex<Vec<Invocation>>,
    log: bool,
    started: Instant,
    /// Milliseconds since `started` of the last delivery, to tell when things have settled.
    last_activity_ms: AtomicU64,
    reporter: SfnTaskReporter,
}

impl Shared {
    fn touch(&self) {
        self.last_activity_ms.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Keeps (and prints) an invocation that just ended.
    pub(crate) fn record(&self, mut invocation: Invocation) {
        self.touch();
        invocation.at = chrono::Utc::now() - invocation.duration;
        if self.log {
            println!("{}", invocation.line());
        }
        self.invocations.lock().unwrap().push(invocation);
    }
}

/// A function of the template as the host runs it.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    pub binary: String,
    pub env: BTreeMap<String, String>,
}

pub struct Host {
    pub moto: Moto,
    pub simulator: RunningSimulator,
    pub resolver: Resolver,
    pub functions: BTreeMap<String, FunctionInfo>,
    pub routes: Vec<(String, String, String)>,
    pub sdk: SdkConfig,
    http_addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Host {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn get<'a>(value: &'a Yaml, key: &str) -> Option<&'a Yaml> {
    value.get(key)
}

impl Host {
    /// Provisions everything the template declares and starts playing Lambda. The HTTP port is
    /// taken first, so a busy port fails before anything else starts.
    pub async fn start(config: HostConfig) -> Result<Self, Error> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.http_port)).await.map_err(|e| {
            Error::Setup(format!(
                "cannot listen on 127.0.0.1:{}: {e}. Is another local system running? Stop it, or pick another port \
                 with --port",
                config.http_port
            ))
        })?;
        let http_addr = listener.local_addr().map_err(setup("local address"))?;
        let template = match &config.template {
            Some(path) => Template::load(path)?,
            None => Template::load_project()?,
        };
        let moto = match &config.moto_endpoint {
            Some(endpoint) => Moto::connect(endpoint).await?,
            None => Moto::start().await?,
        };
        let sdk = moto.sdk_config();
        let mut resolver = Resolver { parameters: parameters(&template, &config.parameters)?, ..Resolver::default() };
        provision(&moto, &template, &mut resolver).await?;
        for (id, _) in template.resources_of_type("AWS::Serverless::HttpApi") {
            let endpoint = format!("http://{http_addr}");
            resolver.resources.insert(id.to_owned(), Physical::HttpApi { id: id.to_owned(), endpoint });
        }

        let api_key = provider_key(&sdk, &resolver).await?;
        let simulator = Simulator::new(SimulatorConfig { api_key, ..SimulatorConfig::default() })
            .map_err(setup("simulator"))?
            .spawn(0)
            .await
            .map_err(setup("simulator"))?;
        if !config.parameters.contains_key(PROVIDER_URL_PARAMETER) {
            resolver.parameters.insert(PROVIDER_URL_PARAMETER.into(), simulator.base_url());
        }

        let shared = Arc::new(Shared {
            interceptor: Mutex::new(None),
            invocations: Mutex::new(Vec::new()),
            log: config.log_invocations,
            started: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
            reporter: SfnTaskReporter::new(aws_sdk_sfn::Client::new(&sdk)),
        });
        let mut host = Host {
            moto,
            simulator,
            resolver,
            functions: BTreeMap::new(),
            routes: Vec::new(),
            sdk,
            http_addr,
            shared,
            tasks: Vec::new(),
        };
        let mut routes = Vec::new();
        for (logical_id, resource) in template.resources_of_type("AWS::Serverless::Function") {
            host.start_function(logical_id, resource, &config.env_overrides, &mut routes).await?;
        }
        for (logical_id, resource) in template.resources_of_type("AWS::Events::Rule") {
            host.start_rule(logical_id, resource).await?;
        }
        host.routes = routes.iter().map(|r| (r.method.clone(), r.path.clone(), r.binary.clone())).collect();
        host.tasks.push(tokio::spawn(serve(listener, routes, host.shared.clone())));
        Ok(host)
    }

    async fn start_function(
        &mut self,
        logical_id: &str,
        resource: &local_aws::template::Resource,
        overrides: &BTreeMap<String, String>,
        routes: &mut Vec<Route>,
    ) -> Result<(), Error> {
        let binary = get(&resource.metadata, "BuildProperties")
            .and_then(|p| get(p, "Binary"))
            .and_then(Yaml::as_str)
            .ok_or_else(|| Error::Setup(format!("{logical_id} names no Metadata.BuildProperties.Binary")))?
            .to_owned();
        let mut env = BTreeMap::new();
        if let Some(Yaml::Mapping(vars)) = get(&resource.properties, "Environment").and_then(|e| get(e, "Variables")) {
            for (name, value) in vars {
                let name = name.as_str().unwrap_or_default().to_owned();
                let value =
                    self.resolver.resolve(value).map_err(|e| Error::Setup(format!("{logical_id}.{name}: {e}")))?;
                env.insert(name, value);
            }
        }
        env.extend(overrides.clone());
        let lookup_env = env.clone();
        let lookup = move |name: &str| lookup_env.get(name).cloned();
        let handler = Arc::new(build(&binary, &self.sdk, &lookup).await.map_err(Error::Setup)?);
        let invoke_config = get(&resource.properties, "EventInvokeConfig");
        let async_retries =
            invoke_config.and_then(|c| get(c, "MaximumRetryAttempts")).and_then(Yaml::as_u64).unwrap_or(2) as u32;
        let async_dlq = invoke_config
            .and_then(|c| get(c, "DestinationConfig"))
            .and_then(|c| get(c, "OnFailure"))
            .and_then(|c| get(c, "Destination"))
            .map(|d| self.queue_url_of(d))
            .transpose()?;

        let events = match get(&resource.properties, "Events") {
            Some(Yaml::Mapping(events)) => events.clone(),
            _ => Default::default(),
        };
        for (name, event) in &events {
            let name = name.as_str().unwrap_or_default();
            let properties = get(event, "Properties").cloned().unwrap_or(Yaml::Null);
            match get(event, "Type").and_then(Yaml::as_str) {
                Some("HttpApi") => {
                    let Handler::Http(router) = handler.as_ref() else {
                        return Err(Error::Setup(format!("{logical_id}.{name}: {binary} is not an HTTP function")));
                    };
                    let text = |key: &str| get(&properties, key).and_then(Yaml::as_str).unwrap_or_default().to_owned();
                    routes.push(Route::new(text("Method"), text("Path"), binary.clone(), router.clone()));
                }
                Some("EventBridgeRule") => {
                    if !matches!(handler.as_ref(), Handler::Events(_)) {
                        return Err(Error::Setup(format!("{logical_id}.{name}: {binary} takes no EventBridge events")));
                    }
                    let bus = match get(&properties, "EventBusName") {
                        Some(value) => self.resolver.resolve(value)?,
                        None => "default".to_owned(),
                    };
                    let pattern = serde_json::to_value(get(&properties, "Pattern")).map_err(setup("rule pattern"))?;
                    let tap =
                        EventTap::create(&self.moto, &bus, &unique_name(&format!("{logical_id}-{name}")), &pattern)
                            .await?;
                    let task = rule_loop(
                        tap,
                        handler.clone(),
                        binary.clone(),
                        async_retries,
                        async_dlq.clone(),
                        self.shared.clone(),
                        aws_sdk_sqs::Client::new(&self.sdk),
                    );
                    self.tasks.push(tokio::spawn(task));
                }
                Some("DynamoDB") => {
                    let stream = get(&properties, "Stream")
                        .ok_or_else(|| Error::Setup(format!("{logical_id}.{name}: no Stream")))?;
                    let table_id = local_aws::referenced(stream).ok_or_else(|| {
                        Error::Setup(format!("{logical_id}.{name}: Stream must be !GetAtt Table.StreamArn"))
                    })?;
                    let Physical::Table { name: table, .. } = self.resolver.physical(table_id)?.clone() else {
                        return Err(Error::Setup(format!("{logical_id}.{name}: {table_id} is not a table")));
                    };
                    let filters = match get(&properties, "FilterCriteria").and_then(|f| get(f, "Filters")) {
                        Some(Yaml::Sequence(filters)) => filters
                            .iter()
                            .map(|f| {
                                let text = get(f, "Pattern").and_then(Yaml::as_str).unwrap_or("{}");
                                serde_json::from_str::<Value>(text).map_err(setup("filter pattern"))
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                        _ => Vec::new(),
                    };
                    let trigger = StreamTrigger {
                        reader: StreamReader::for_table(&self.moto, &table).await?,
                        table,
                        batch_size: get(&properties, "BatchSize").and_then(Yaml::as_u64).unwrap_or(100) as usize,
                        filters,
                        dlq: get(&properties, "DestinationConfig")
                            .and_then(|c| get(c, "OnFailure"))
                            .and_then(|c| get(c, "Destination"))
                            .map(|d| self.queue_url_of(d))
                            .transpose()?,
                    };
                    let task = stream_loop(
                        trigger,
                        handler.clone(),
                        binary.clone(),
                        self.shared.clone(),
                        aws_sdk_sqs::Client::new(&self.sdk),
                    );
                    self.tasks.push(tokio::spawn(task));
                }
                Some(other) => {
                    return Err(Error::Setup(format!(
                        "{logical_id}.{name}: the local host does not run {other} triggers"
                    )));
                }
                None => return Err(Error::Setup(format!("{logical_id}.{name}: an event without a Type"))),
            }
        }
        self.functions.insert(logical_id.to_owned(), FunctionInfo { binary, env });
        Ok(())
    }

    /// An `AWS::Events::Rule` whose targets are state machines: each matching event starts an
    /// execution with the event as its input, as EventBridge's Step Functions target does.
    async fn start_rule(&mut self, logical_id: &str, resource: &local_aws::template::Resource) -> Result<(), Error> {
        let properties = &resource.properties;
        let bus = match get(properties, "EventBusName") {
            Some(value) => self.resolver.resolve(value)?,
            None => "default".to_owned(),
        };
        let pattern = serde_json::to_value(get(properties, "EventPattern")).map_err(setup("rule pattern"))?;
        let mut machines = Vec::new();
        if let Some(Yaml::Sequence(targets)) = get(properties, "Targets") {
            for target in targets {
                let arn = self.resolver.resolve(get(target, "Arn").unwrap_or(&Yaml::Null))?;
                let is_machine = self
                    .resolver
                    .resources
                    .values()
                    .any(|p| matches!(p, Physical::StateMachine { arn: a, .. } if *a == arn));
                if !is_machine {
                    return Err(Error::Setup(format!(
                        "{logical_id}: the local host runs rule targets that are state machines or functions' own EventBridgeRule events, not {arn}"
                    )));
                }
                machines.push(arn);
            }
        }
        let tap = EventTap::create(&self.moto, &bus, &unique_name(logical_id), &pattern).await?;
        let sfn = aws_sdk_sfn::Client::new(&self.sdk);
        let shared = self.shared.clone();
        let rule = logical_id.to_owned();
        self.tasks.push(tokio::spawn(async move {
            loop {
                let Ok(events) = tap.poll_waiting(1).await else {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                };
                for event in events {
                    for machine in &machines {
                        let started = Instant::now();
                        let result =
                            sfn.start_execution().state_machine_arn(machine).input(event.to_string()).send().await;
                        shared.record(Invocation {
                            at: Default::default(),
                            binary: format!("rule {rule}"),
                            trigger: format!("{} -> StartExecution", event["detail-type"].as_str().unwrap_or("?")),
                            order_id: None,
                            correlation_id: event["detail"]["correlation_id"].as_str().map(str::to_owned),
                            duration: started.elapsed(),
                            attempt: 1,
                            outcome: result
                                .map(|_| None)
                                .map_err(|e| aws_sdk_sfn::error::DisplayErrorContext(e).to_string()),
                        });
                    }
                }
            }
        }));
        Ok(())
    }

    /// The queue URL behind a destination written as the queue's ARN.
    fn queue_url_of(&self, destination: &Yaml) -> Result<String, Error> {
        let arn = self.resolver.resolve(destination)?;
        self.resolver
            .resources
            .values()
            .find_map(|p| match p {
                Physical::Queue { url, arn: a, .. } if *a == arn => Some(url.clone()),
                _ => None,
            })
            .ok_or_else(|| Error::Setup(format!("no local queue with ARN {arn}")))
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// A function's environment as the host resolved it.
    pub fn env(&self, function: &str) -> impl Fn(&str) -> Option<String> + Send + Sync + use<> {
        let env = self.functions.get(function).map(|f| f.env.clone()).unwrap_or_default();
        move |name: &str| env.get(name).cloned()
    }

    /// Decides, per command type, how each saga command is delivered from now on.
    pub fn intercept(&self, interceptor: impl Fn(&str) -> Delivery + Send + Sync + 'static) {
        *self.shared.interceptor.lock().unwrap() = Some(Box::new(interceptor));
    }

    pub fn invocations(&self) -> Vec<Invocation> {
        self.shared.invocations.lock().unwrap().clone()
    }

    /// The state machine's ARN (the template declares one).
    pub fn state_machine_arn(&self) -> Result<String, Error> {
        self.resolver
            .resources
            .values()
            .find_map(|p| match p {
                Physical::StateMachine { arn, .. } => Some(arn.clone()),
                _ => None,
            })
            .ok_or_else(|| Error::Setup("the template declares no state machine".into()))
    }

    /// The execution of an order's saga (executions are named after the order).
    pub fn execution_arn(&self, order_id: &str) -> String {
        let machine = self.state_machine_arn().unwrap_or_default();
        shared::saga::execution_arn(&machine, order_id)
    }

    /// Waits until the order's saga has finished and nothing was delivered for a moment.
    /// Returns the execution's status (`SUCCEEDED`, `FAILED`, ...).
    pub async fn wait_for_saga(&self, order_id: &str, timeout: Duration) -> Result<String, Error> {
        let sfn = aws_sdk_sfn::Client::new(&self.sdk);
        let deadline = Instant::now() + timeout;
        let arn = self.execution_arn(order_id);
        loop {
            let status =
                sfn.describe_execution().execution_arn(&arn).send().await.ok().map(|e| e.status.as_str().to_owned());
            if let Some(status) = status.filter(|s| s != "RUNNING") {
                let quiet_for = self.shared.started.elapsed().as_millis() as u64
                    - self.shared.last_activity_ms.load(Ordering::Relaxed);
                // What the last steps published (OrderConfirmed, ...) still has to reach its consumers.
                if quiet_for > 1500 {
                    return Ok(status);
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Setup(format!("the saga of order {order_id} did not finish within {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The names of the states the order's execution entered, in order.
    pub async fn states_entered(&self, order_id: &str) -> Result<Vec<String>, Error> {
        Ok(self
            .history(order_id)
            .await?
            .iter()
            .filter_map(|e| e.state_entered_event_details().map(|d| d.name().to_owned()))
            .collect())
    }

    /// The execution history's event types (`TaskScheduled`, `TaskTimedOut`, ...).
    pub async fn history_types(&self, order_id: &str) -> Result<Vec<String>, Error> {
        Ok(self.history(order_id).await?.iter().map(|e| e.r#type().as_str().to_owned()).collect())
    }

    async fn history(&self, order_id: &str) -> Result<Vec<aws_sdk_sfn::types::HistoryEvent>, Error> {
        let sfn = aws_sdk_sfn::Client::new(&self.sdk);
        let mut events = Vec::new();
        let mut token = None;
        loop {
            let page = sfn
                .get_execution_history()
                .execution_arn(self.execution_arn(order_id))
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| {
                    Error::Setup(format!("GetExecutionHistory: {}", aws_sdk_sfn::error::DisplayErrorContext(e)))
                })?;
            events.extend(page.events().iter().cloned());
            token = page.next_token;
            if token.is_none() {
                return Ok(events);
            }
        }
    }

    /// Names of every execution of the state machine.
    pub async fn executions(&self) -> Result<Vec<String>, Error> {
        let page = aws_sdk_sfn::Client::new(&self.sdk)
            .list_executions()
            .state_machine_arn(self.state_machine_arn()?)
            .send()
            .await
            .map_err(|e| Error::Setup(format!("ListExecutions: {}", aws_sdk_sfn::error::DisplayErrorContext(e))))?;
        Ok(page.executions().iter().map(|e| e.name().to_owned()).collect())
    }
}

/// Parameter values: the template's defaults, then the overrides.
fn parameters(template: &Template, overrides: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Error> {
    let mut values = BTreeMap::new();
    for (name, parameter) in &template.parameters {
        if let Some(default) = get(parameter, "Default") {
            values.insert(name.clone(), Resolver::default().resolve(default)?);
        }
    }
    values.extend(overrides.clone());
    Ok(values)
}

/// Creates every resource of a kind the host knows, in dependency order.
async fn provision(moto: &Moto, template: &Template, resolver: &mut Resolver) -> Result<(), Error> {
    let sdk = moto.sdk_config();
    for (id, _) in template.resources_of_type("AWS::DynamoDB::Table") {
        let name = moto.create_table(&template.table(id)?, &unique_name(id)).await?;
        let description = aws_sdk_dynamodb::Client::new(&sdk).describe_table().table_name(&name).send().await;
        let stream_arn = description.ok().and_then(|d| d.table?.latest_stream_arn);
        resolver.resources.insert(id.to_owned(), Physical::Table { name, stream_arn });
    }
    for (id, _) in template.resources_of_type("AWS::Events::EventBus") {
        let name = moto.create_bus(&unique_name("shop")).await?;
        resolver.resources.insert(id.to_owned(), Physical::Bus { name });
    }
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    for (id, _) in template.resources_of_type("AWS::SQS::Queue") {
        let name = unique_name(id);
        let url = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .map_err(setup("CreateQueue"))?
            .queue_url
            .unwrap_or_default();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(setup("GetQueueAttributes"))?
            .attributes
            .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .unwrap_or_default();
        resolver.resources.insert(id.to_owned(), Physical::Queue { url, arn, name });
    }
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    for (id, resource) in template.resources_of_type("AWS::SecretsManager::Secret") {
        let value = secret_value(&resource.properties)?;
        let created = secrets.create_secret().name(unique_name(id)).secret_string(value).send().await.map_err(|e| {
            Error::Setup(format!("CreateSecret: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(e)))
        })?;
        resolver.resources.insert(id.to_owned(), Physical::Secret { arn: created.arn.unwrap_or_default() });
    }
    for (id, _) in template.resources_of_type("AWS::Serverless::StateMachine") {
        let spec = template.state_machine(id)?;
        let failure = Mutex::new(None);
        let definition = spec.definition(|name, value| match resolver.resolve(value) {
            Ok(v) => Some(v),
            Err(e) => {
                *failure.lock().unwrap() = Some(format!("{id}.DefinitionSubstitutions.{name}: {e}"));
                None
            }
        });
        let definition =
            definition.map_err(|e| Error::Setup(failure.into_inner().unwrap().unwrap_or_else(|| e.to_string())))?;
        let name = unique_name(id);
        let arn = moto.create_state_machine(&name, &definition).await?;
        resolver.resources.insert(id.to_owned(), Physical::StateMachine { arn, name });
    }
    Ok(())
}

/// The initial value of a secret: its `SecretString`, or what `GenerateSecretString` describes.
fn secret_value(properties: &Yaml) -> Result<String, Error> {
    if let Some(value) = get(properties, "SecretString").and_then(Yaml::as_str) {
        return Ok(value.to_owned());
    }
    let Some(generate) = get(properties, "GenerateSecretString") else {
        return Ok(String::new());
    };
    let length = get(generate, "PasswordLength").and_then(Yaml::as_u64).unwrap_or(32) as usize;
    let mut rng = fastrand::Rng::new();
    let random: String = (0..length).map(|_| rng.alphanumeric()).collect();
    match (
        get(generate, "SecretStringTemplate").and_then(Yaml::as_str),
        get(generate, "GenerateStringKey").and_then(Yaml::as_str),
    ) {
        (Some(template), Some(key)) => {
            let mut object: serde_json::Map<String, Value> =
                serde_json::from_str(template).map_err(setup("SecretStringTemplate"))?;
            object.insert(key.to_owned(), Value::String(format!("sk_test_{random}")));
            Ok(Value::Object(object).to_string())
        }
        _ => Ok(random),
    }
}

/// The API key in the provider secret, which the simulator will accept.
async fn provider_key(sdk: &SdkConfig, resolver: &Resolver) -> Result<String, Error> {
    let Ok(Physical::Secret { arn }) = resolver.physical(PROVIDER_SECRET) else {
        return Ok("sk_test_local".into());
    };
    let key = payments::adapters::stripe::ApiKey::from_secrets_manager(&aws_sdk_secretsmanager::Client::new(sdk), arn)
        .await
        .map_err(setup("provider secret"))?;
    Ok(key.expose().to_owned())
}

async fn send_to_dlq(sqs: &aws_sdk_sqs::Client, url: &str, body: Value) {
    if let Err(e) = sqs.send_message().queue_url(url).message_body(body.to_string()).send().await {
        tracing::error!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "could not write to the DLQ");
    }
}

fn correlation_of(event: &EventBridgeEvent<Value>) -> Option<String> {
    event.detail.get("correlation_id").and_then(Value::as_str).map(str::to_owned)
}

/// Delivers a rule's events to its function: Lambda's asynchronous invocation, with its retries
/// and on-failure destination.
async fn rule_loop(
    tap: EventTap,
    handler: Arc<Handler>,
    binary: String,
    retries: u32,
    dlq: Option<String>,
    shared: Arc<Shared>,
    sqs: aws_sdk_sqs::Client,
) {
    let Handler::Events(function) = handler.as_ref() else { return };
    loop {
        let events = match tap.poll_waiting(1).await {
            Ok(events) => events,
            Err(e) => {
                tracing::error!(error = %e, binary, "polling a rule queue failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for raw in events {
            shared.touch();
            let event: EventBridgeEvent<Value> = match serde_json::from_value(raw.clone()) {
                Ok(event) => event,
                Err(e) => {
                    tracing::error!(error = %e, binary, "not an EventBridge event");
                    continue;
                }
            };
            deliver(function.as_ref(), &binary, event, retries, dlq.as_deref(), &shared, &sqs).await;
        }
    }
}

async fn deliver(
    function: &dyn EventFunction,
    binary: &str,
    event: EventBridgeEvent<Value>,
    retries: u32,
    dlq: Option<&str>,
    shared: &Shared,
    sqs: &aws_sdk_sqs::Client,
) {
    let trigger = event.detail_type.clone();
    let order_id = event.detail.get("aggregate_id").and_then(Value::as_str).map(str::to_owned);
    let correlation_id = correlation_of(&event);
    let delivery = match shared.interceptor.lock().unwrap().as_ref() {
        Some(decide) if event.source == shared::saga::COMMAND_SOURCE => decide(&trigger),
        _ => Delivery::Handle,
    };
    let invocation = |outcome, duration, attempt| Invocation {
        at: Default::default(),
        binary: binary.to_owned(),
        trigger: trigger.clone(),
        order_id: order_id.clone(),
        correlation_id: correlation_id.clone(),
        duration,
        attempt,
        outcome,
    };
    let times = match delivery {
        Delivery::Drop => {
            shared.record(invocation(Ok(None), Duration::ZERO, 0));
            return;
        }
        Delivery::Answer(outcome) => {
            let token = event.detail.get("task_token").and_then(Value::as_str).unwrap_or_default();
            let result =
                shared.reporter.report(token, &outcome).await.map(|_| Some(outcome)).map_err(|e| e.to_string());
            shared.record(invocation(result, Duration::ZERO, 1));
            return;
        }
        Delivery::Twice => 2,
        Delivery::Handle => 1,
    };
    for _ in 0..times {
        for attempt in 1..=retries + 1 {
            let started = Instant::now();
            let result = function.invoke(event.clone()).await;
            let failed = result.is_err();
            shared.record(invocation(result.clone(), started.elapsed(), attempt));
            if !failed {
                break;
            }
            if attempt == retries + 1 {
                if let Some(url) = dlq {
                    let body = serde_json::json!({"event": event, "error": result.err(), "function": binary});
                    send_to_dlq(sqs, url, body).await;
                }
            } else {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
    }
}

struct StreamTrigger {
    reader: StreamReader,
    table: String,
    batch_size: usize,
    filters: Vec<Value>,
    dlq: Option<String>,
}

/// Lambda event filtering, for the exact-value patterns the template uses: every key of the
/// pattern must be present, with one of the listed values (nested objects match nested objects).
pub fn matches(pattern: &Value, record: &Value) -> bool {
    match (pattern, record) {
        (Value::Object(pattern), Value::Object(record)) => {
            pattern.iter().all(|(key, p)| record.get(key).is_some_and(|r| matches(p, r)))
        }
        (Value::Array(options), value) => options.iter().any(|option| option == value),
        _ => false,
    }
}

/// Polls a table's stream and hands batches to its function, honouring partial batch failures:
/// the batch is retried from the first failed record, then sent to the on-failure destination.
async fn stream_loop(
    mut trigger: StreamTrigger,
    handler: Arc<Handler>,
    binary: String,
    shared: Arc<Shared>,
    sqs: aws_sdk_sqs::Client,
) {
    let Handler::Stream(function) = handler.as_ref() else { return };
    let mut pending: VecDeque<EventRecord> = VecDeque::new();
    let mut attempt = 1;
    loop {
        match trigger.reader.poll().await {
            Ok(records) => {
                for record in records {
                    let json = serde_json::to_value(&record).unwrap_or(Value::Null);
                    if trigger.filters.is_empty() || trigger.filters.iter().any(|f| matches(f, &json)) {
                        pending.push_back(record);
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, binary, "polling a stream failed"),
        }
        if pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(150)).await;
            continue;
        }
        let batch: Vec<EventRecord> = pending.iter().take(trigger.batch_size).cloned().collect();
        let correlation_id = batch.iter().find_map(|r| {
            r.change.new_image.get("correlation_id").and_then(|v| match v {
                serde_dynamo::AttributeValue::S(s) => Some(s.clone()),
                _ => None,
            })
        });
        let mut event = StreamEvent::default();
        event.records = batch.clone();
        let started = Instant::now();
        let response = function.invoke(event).await;
        let failed_at = response
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.clone())
            .filter_map(|id| batch.iter().position(|r| r.change.sequence_number.as_deref() == Some(id.as_str())))
            .min();
        let done = failed_at.unwrap_or(batch.len());
        let outcome = match failed_at {
            None => Ok(None),
            Some(i) => Err(format!("{} of {} records failed from #{i}", batch.len() - i, batch.len())),
        };
        shared.record(Invocation {
            at: Default::default(),
            binary: binary.clone(),
            trigger: format!("stream {} ({} records)", trigger.table, batch.len()),
            order_id: None,
            correlation_id,
            duration: started.elapsed(),
            attempt,
            outcome,
        });
        pending.drain(..done);
        if failed_at.is_none() {
            attempt = 1;
            continue;
        }
        if attempt > LOCAL_STREAM_RETRIES {
            let failed: Vec<EventRecord> = pending.drain(..batch.len() - done).collect();
            if let Some(url) = &trigger.dlq {
                send_to_dlq(&sqs, url, serde_json::json!({"function": binary, "records": failed})).await;
            }
            attempt = 1;
        } else {
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_exact_values_at_every_level() {
        let record = serde_json::json!({"eventName": "INSERT", "dynamodb": {"NewImage": {"entity": {"S": "OUTBOX"}}}});
        let outbox =
            serde_json::json!({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"entity": {"S": ["OUTBOX"]}}}});
        let product =
            serde_json::json!({"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"entity": {"S": ["PRODUCT"]}}}});
        assert!(matches(&outbox, &record));
        assert!(!matches(&product, &record));
        assert!(!matches(&serde_json::json!({"missing": ["x"]}), &record));
    }
}
