//! The local host: provisions the emulator from the template and runs every function on its
//! triggers. This module only puts the rooms together: [`crate::provision`] finds or creates the
//! resources, [`crate::spec`] reads each function once, [`crate::triggers`] runs each kind of
//! trigger, [`crate::http`] serves the routes, [`crate::sfn`] answers the tests' questions about
//! executions.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use aws_config::SdkConfig;
use local_aws::{Moto, Template};
use payment_provider_sim::{RunningSimulator, Simulator, SimulatorConfig};
use shared::aws::saga::SfnTaskReporter;
use tokio::task::JoinHandle;

use crate::activity::Activity;
use crate::auth::{Authorizers, ISSUER_PATH, LOCAL_AUDIENCE, LocalIssuer};
use crate::checkpoint::Checkpoints;
use crate::filter::Filter;
use crate::functions::{Handler, build};
use crate::http::{Route, serve};
use crate::provision::{Provisioned, parameters, physical_name, provider_key, provision};
use crate::resolve::{Physical, Resolver};
use crate::spec::{FunctionSpec, Trigger, bus_of};
use crate::triggers::rule_to_function::RuleTarget;
use crate::triggers::rule_to_machine::MachineTarget;
use crate::triggers::stream::StreamTarget;
use crate::triggers::{TimeScale, rule_to_function, rule_to_machine, stream};
use crate::{Delivery, Error, Invocation, sdk_setup, setup};

/// The parameter that points functions at the payment provider: locally, the simulator.
const PROVIDER_URL_PARAMETER: &str = "PaymentProviderBaseUrl";
/// The parameters that name the identity provider: locally, the local token issuer.
const ISSUER_PARAMETER: &str = "IdentityIssuerUrl";
const AUDIENCE_PARAMETER: &str = "IdentityAudience";
const GROUPS_CLAIM_PARAMETER: &str = "GroupsClaim";

#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The HTTP APIs' port on 127.0.0.1 (0: any free port).
    pub http_port: u16,
    /// Use this emulator instead of starting one (`AWS_ENDPOINT_URL` in `make local`).
    pub moto_endpoint: Option<String>,
    pub template: Option<PathBuf>,
    /// The stack's name: resources are `<stack>-<LogicalId>`, found if they exist. `None`: a new
    /// unique stack, as tests that share an emulator want.
    pub stack: Option<String>,
    /// Where the stream checkpoints are kept across restarts (`None`: in memory only).
    pub state_dir: Option<PathBuf>,
    /// Parameter values over the template's defaults.
    pub parameters: BTreeMap<String, String>,
    /// Variables added to every function's environment (e.g. a shorter breaker wait in the demo).
    pub env_overrides: BTreeMap<String, String>,
    /// Written into the provider secret at start, for a provider that runs elsewhere with its own key.
    pub provider_api_key: Option<String>,
    /// AWS's retry timing, scaled (asynchronous invocation retries wait 1 and 2 minutes at 1.0).
    pub time_scale: TimeScale,
    /// Print one line per invocation.
    pub log_invocations: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            http_port: 3000,
            moto_endpoint: None,
            template: None,
            stack: None,
            state_dir: None,
            parameters: BTreeMap::new(),
            env_overrides: BTreeMap::new(),
            provider_api_key: None,
            // Tests and the demo retry at a hundredth of AWS's waits; `make local` at AWS's own.
            time_scale: TimeScale(0.01),
            log_invocations: false,
        }
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
    /// Resources found in the emulator rather than created (a restart) and created.
    pub provisioned: Provisioned,
    /// Stream positions the host resumed from.
    pub resumed_checkpoints: usize,
    http_addr: SocketAddr,
    issuer: Arc<LocalIssuer>,
    iam: crate::sigv4::IamVerifier,
    pub(crate) activity: Arc<Activity>,
    tasks: Vec<JoinHandle<()>>,
    /// Decides which template rules each event matches (quamina); started once all are known.
    router: crate::triggers::rule_router::Router,
}

impl Drop for Host {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Host {
    /// Provisions (or finds) everything the template declares and starts playing Lambda. The
    /// HTTP port is taken first, so a busy port fails before anything else starts.
    pub async fn start(config: HostConfig) -> Result<Self, Error> {
        crate::metrics::install();
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
        let mut resolver = resolver(&template, &config, http_addr)?;
        let issuer = Arc::new(local_issuer(&resolver, http_addr)?);
        let provisioned = provision(&moto, &template, &mut resolver).await?;
        for (id, _) in template.resources_of_type("AWS::Serverless::HttpApi") {
            let endpoint = format!("http://{http_addr}");
            resolver.resources.insert(id.to_owned(), Physical::HttpApi { id: id.to_owned(), endpoint });
        }
        let simulator = start_simulator(&sdk, &mut resolver, &config).await?;
        let checkpoints = Arc::new(Checkpoints::open(config.state_dir.as_ref().map(|dir| {
            let _ = std::fs::create_dir_all(dir);
            dir.join(format!("{}-checkpoints.json", resolver.stack))
        })));
        let activity =
            Arc::new(Activity::new(config.log_invocations, SfnTaskReporter::new(aws_sdk_sfn::Client::new(&sdk))));
        let iam = crate::sigv4::IamVerifier::new(local_credentials(&sdk).await?, crate::resolve::REGION);
        let mut host = Host {
            moto,
            simulator,
            resolver,
            functions: BTreeMap::new(),
            routes: Vec::new(),
            sdk,
            provisioned,
            resumed_checkpoints: checkpoints.len(),
            http_addr,
            issuer,
            iam,
            activity,
            tasks: Vec::new(),
            router: Default::default(),
        };
        host.start_triggers(&template, &config, &checkpoints, listener).await?;
        Ok(host)
    }

    /// Every function on its triggers, the rules to state machines, the rule router, and the
    /// HTTP routes on `listener`.
    async fn start_triggers(
        &mut self,
        template: &Template,
        config: &HostConfig,
        checkpoints: &Arc<Checkpoints>,
        listener: tokio::net::TcpListener,
    ) -> Result<(), Error> {
        let authorizers = Authorizers::read(template, &self.resolver)?;
        let mut routes = Vec::new();
        for (logical_id, resource) in template.resources_of_type("AWS::Serverless::Function") {
            let spec = FunctionSpec::parse(logical_id, resource, &self.resolver, &config.env_overrides)?;
            self.start_function(spec, checkpoints, config.time_scale, &mut routes, &authorizers).await?;
        }
        for (logical_id, resource) in template.resources_of_type("AWS::Events::Rule") {
            self.start_rule(logical_id, resource).await?;
        }
        let router = std::mem::take(&mut self.router);
        let routing = router.start(&self.moto, &self.resolver.stack).await?;
        self.tasks.extend(routing);
        self.routes = routes.iter().map(|r| (r.method.clone(), r.path.clone(), r.binary.clone())).collect();
        let (issuer, iam) = (self.issuer.clone(), self.iam.clone());
        self.tasks.push(tokio::spawn(serve(listener, routes, self.activity.clone(), issuer, iam)));
        Ok(())
    }

    async fn start_function(
        &mut self,
        spec: FunctionSpec,
        checkpoints: &Arc<Checkpoints>,
        scale: TimeScale,
        routes: &mut Vec<Route>,
        authorizers: &Authorizers,
    ) -> Result<(), Error> {
        let binary = spec.binary.clone();
        let handler = build(&binary, &self.sdk, &spec.lookup()).await.map_err(Error::Setup)?;
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        for trigger in &spec.triggers {
            match (trigger, &handler) {
                (Trigger::Http { method, path, api, authorizer }, Handler::Http(router)) => {
                    let auth = authorizers
                        .route(api.as_deref(), authorizer.as_deref())
                        .map_err(|e| Error::Setup(format!("{} {method} {path}: {e}", spec.logical_id)))?;
                    routes.push(Route::new(method.clone(), path.clone(), binary.clone(), router.clone(), auth));
                }
                (Trigger::Rule { name, bus, pattern, delivery }, Handler::Events(function)) => {
                    let queue = physical_name(&self.resolver.stack, &format!("{}-{name}", spec.logical_id));
                    let tap = self.router.queue(&self.moto, bus, &queue, pattern).await?;
                    let target = RuleTarget {
                        tap,
                        function: function.clone(),
                        binary: binary.clone(),
                        retries: spec.async_retries,
                        max_event_age: spec.async_max_age,
                        on_failure: spec.async_on_failure.clone(),
                        delivery: delivery.clone(),
                        scale,
                    };
                    self.tasks.push(tokio::spawn(rule_to_function::run(target, self.activity.clone(), sqs.clone())));
                }
                (Trigger::Stream(stream_spec), Handler::Stream(function)) => {
                    let target = StreamTarget {
                        filter: Filter::new(&stream_spec.filters).map_err(Error::Setup)?,
                        spec: stream_spec.clone(),
                        function: function.clone(),
                        binary: binary.clone(),
                        checkpoints: checkpoints.clone(),
                    };
                    let client = aws_sdk_dynamodbstreams::Client::new(&self.sdk);
                    self.tasks.push(tokio::spawn(stream::run(target, self.activity.clone(), sqs.clone(), client)));
                }
                (Trigger::Schedule(schedule), Handler::Invoke(function)) => {
                    let target = crate::triggers::schedule::ScheduleTarget {
                        spec: schedule.clone(),
                        function: function.clone(),
                        binary: binary.clone(),
                        logical_id: spec.logical_id.clone(),
                        retries: spec.async_retries,
                        scale,
                    };
                    self.tasks.push(tokio::spawn(crate::triggers::schedule::run(target, self.activity.clone())));
                }
                (trigger, _) => return Err(wrong_kind(&spec, trigger)),
            }
        }
        self.functions.insert(spec.logical_id.clone(), FunctionInfo { binary, env: spec.env });
        Ok(())
    }

    /// An `AWS::Events::Rule` whose targets are state machines.
    async fn start_rule(&mut self, logical_id: &str, resource: &local_aws::template::Resource) -> Result<(), Error> {
        let properties = &resource.properties;
        let bus = bus_of(&self.resolver, properties)?;
        let pattern = serde_json::to_value(properties.get("EventPattern")).map_err(setup("rule pattern"))?;
        let machines = rule_to_machine::machines(logical_id, properties, &bus, &self.resolver)?;
        if machines.is_empty() {
            return Ok(());
        }
        let tap =
            self.router.queue(&self.moto, &bus, &physical_name(&self.resolver.stack, logical_id), &pattern).await?;
        let target = MachineTarget { rule: logical_id.to_owned(), tap, machines };
        let sfn = aws_sdk_sfn::Client::new(&self.sdk);
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        self.tasks.push(tokio::spawn(rule_to_machine::run(target, self.activity.clone(), sfn, sqs)));
        Ok(())
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// The local token issuer, which the template's JWT authorizer trusts here.
    pub fn issuer(&self) -> &LocalIssuer {
        &self.issuer
    }

    /// Signs `request` with the local credentials (SigV4), as the internal APIs' `AWS_IAM`
    /// routes require: for calling an internal API directly.
    pub fn sign(&self, request: &mut reqwest::Request) {
        self.iam.sign(request);
    }

    /// A token of the local issuer for customer `sub` in `groups` (`["admin"]` for an admin).
    pub fn token(&self, sub: &str, groups: &[&str]) -> String {
        let request = crate::auth::TokenRequest {
            sub: sub.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            expires_in: None,
        };
        self.issuer.sign(&self.issuer.claims(&request).expect("a valid token request"))
    }

    /// The stack's name (resources are `<stack>-<LogicalId>`).
    pub fn stack(&self) -> &str {
        &self.resolver.stack
    }

    /// A function's environment as the host resolved it.
    pub fn env(&self, function: &str) -> impl Fn(&str) -> Option<String> + Send + Sync + use<> {
        let env = self.functions.get(function).map(|f| f.env.clone()).unwrap_or_default();
        move |name: &str| env.get(name).cloned()
    }

    /// Decides, per command type, how each saga command is delivered from now on.
    pub fn intercept(&self, interceptor: impl Fn(&str) -> Delivery + Send + Sync + 'static) {
        self.activity.intercept(Box::new(interceptor));
    }

    pub fn invocations(&self) -> Vec<Invocation> {
        self.activity.invocations()
    }
}

/// The credentials the local system signs with, which `AWS_IAM` routes require.
async fn local_credentials(sdk: &SdkConfig) -> Result<aws_credential_types::Credentials, Error> {
    use aws_credential_types::provider::ProvideCredentials;
    let provider =
        sdk.credentials_provider().ok_or_else(|| Error::Setup("the local SDK config has no credentials".into()))?;
    provider.provide_credentials().await.map_err(setup("the local credentials"))
}

/// Puts `key` into the provider secret (as `{"api_key": ...}`, the form the template generates).
async fn put_provider_key(sdk: &SdkConfig, resolver: &Resolver, key: &str) -> Result<(), Error> {
    let Physical::Secret { arn } = resolver.physical(crate::provision::PROVIDER_SECRET)? else {
        return Err(Error::Setup("the provider secret is not a secret".into()));
    };
    let value = serde_json::json!({ "api_key": key }).to_string();
    aws_sdk_secretsmanager::Client::new(sdk)
        .put_secret_value()
        .secret_id(arn)
        .secret_string(value)
        .send()
        .await
        .map_err(sdk_setup("PutSecretValue"))?;
    Ok(())
}

/// The resolver of a new host: the template's parameters over the overrides, and the local
/// token issuer on this port as the JWT authorizer's issuer unless a parameter names another.
fn resolver(template: &Template, config: &HostConfig, http_addr: SocketAddr) -> Result<Resolver, Error> {
    let stack = config.stack.clone().unwrap_or_else(|| local_aws::unique_name("shop"));
    let mut resolver = Resolver { parameters: parameters(template, &config.parameters)?, stack, ..Resolver::default() };
    if !config.parameters.contains_key(ISSUER_PARAMETER) {
        resolver.parameters.insert(ISSUER_PARAMETER.into(), format!("http://{http_addr}{ISSUER_PATH}"));
    }
    if !config.parameters.contains_key(AUDIENCE_PARAMETER) {
        resolver.parameters.insert(AUDIENCE_PARAMETER.into(), LOCAL_AUDIENCE.into());
    }
    Ok(resolver)
}

/// The local token issuer, for the audience and groups claim the parameters name.
fn local_issuer(resolver: &Resolver, http_addr: SocketAddr) -> Result<LocalIssuer, Error> {
    LocalIssuer::generate(
        format!("http://{http_addr}{ISSUER_PATH}"),
        resolver.parameters.get(AUDIENCE_PARAMETER).cloned().unwrap_or_else(|| LOCAL_AUDIENCE.into()),
        resolver.parameters.get(GROUPS_CLAIM_PARAMETER).cloned().unwrap_or_else(|| "cognito:groups".into()),
    )
}

/// The payment provider simulator, accepting the key in the provider secret (the configured one
/// written there first), and the functions pointed at it unless a parameter names another.
async fn start_simulator(
    sdk: &SdkConfig,
    resolver: &mut Resolver,
    config: &HostConfig,
) -> Result<RunningSimulator, Error> {
    if let Some(key) = &config.provider_api_key {
        put_provider_key(sdk, resolver, key).await?;
    }
    let api_key = provider_key(sdk, resolver).await?;
    let simulator = Simulator::new(SimulatorConfig { api_key, ..SimulatorConfig::default() })
        .map_err(setup("simulator"))?
        .spawn(0)
        .await
        .map_err(setup("simulator"))?;
    if !config.parameters.contains_key(PROVIDER_URL_PARAMETER) {
        resolver.parameters.insert(PROVIDER_URL_PARAMETER.into(), simulator.base_url());
    }
    Ok(simulator)
}

/// A trigger on a function whose handler cannot take it.
fn wrong_kind(spec: &FunctionSpec, trigger: &Trigger) -> Error {
    let (name, what) = match trigger {
        Trigger::Schedule(s) => (format!(" ({})", s.name), "a function invoked with any JSON"),
        Trigger::Http { .. } => (String::new(), "an HTTP function"),
        Trigger::Rule { name, .. } => (format!(" ({name})"), "an EventBridge function"),
        Trigger::Stream(s) => (format!(" ({})", s.name), "a stream function"),
    };
    Error::Setup(format!("{}: {} is not {what}{name}", spec.logical_id, spec.binary))
}
