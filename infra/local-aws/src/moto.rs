use std::path::PathBuf;

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::process::PythonServer;
use crate::{Error, TableSpec, project_root};

/// DynamoDB capacity in on-demand request units, and requests by operation.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
pub struct DynamoDbUsage {
    pub read_units: f64,
    pub write_units: f64,
    pub requests: std::collections::BTreeMap<String, u64>,
}

/// What `POST /_local/faults` of our launcher has switched on, and what it refused so far
/// (`faults.py`).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
pub struct BusFaultState {
    pub put_events: PutEventsFault,
    pub refused_entries: u64,
    pub refused_requests: u64,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
pub struct PutEventsFault {
    pub remaining_seconds: f64,
    pub error_code: String,
}

/// A moto server: one we started on 127.0.0.1 and a free port (stopped when dropped), or one
/// already running at a given endpoint.
pub struct Moto {
    _server: Option<PythonServer>,
    endpoint: String,
}

impl Moto {
    /// The Python that has moto installed: `MOTO_PYTHON` if set, else the project's `.venv`.
    /// Never the one on PATH: a test run must use the pinned version the project installs.
    pub fn python() -> PathBuf {
        std::env::var_os("MOTO_PYTHON").map(PathBuf::from).unwrap_or_else(|| project_root().join(".venv/bin/python"))
    }

    /// Our launcher of moto's server app, which serialises DynamoDB requests (see the script).
    pub fn launcher() -> PathBuf {
        project_root().join("infra/local-aws/moto_server.py")
    }

    /// Starts moto, waits until it answers, and turns on real Step Functions execution (which
    /// must happen before any state machine is created).
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(Self::python()).await
    }

    /// Like [`Moto::start`], with the given Python.
    pub async fn start_with(python: PathBuf) -> Result<Self, Error> {
        let server = PythonServer::start(&python, &Self::launcher(), "moto", "/moto-api/").await?;
        let moto = Moto { endpoint: server.base_url.clone(), _server: Some(server) };
        moto.configure().await?;
        Ok(moto)
    }

    /// Starts moto in a process group of its own and leaves it running when this value is
    /// dropped (for a local system whose state outlives it). Returns the moto and the server's
    /// process id and log file.
    pub async fn start_detached() -> Result<(Self, u32, PathBuf), Error> {
        let server = PythonServer::start_in(&Self::python(), &Self::launcher(), "moto", "/moto-api/", true).await?;
        let endpoint = server.base_url.clone();
        let log = server.log_path().to_owned();
        let pid = server.detach();
        let moto = Moto { _server: None, endpoint };
        moto.configure().await?;
        Ok((moto, pid, log))
    }

    /// Whether a moto answers at `endpoint`.
    pub async fn is_running(endpoint: &str) -> bool {
        let url = format!("{}/moto-api/", endpoint.trim_end_matches('/'));
        matches!(reqwest::get(url).await, Ok(r) if r.status().is_success())
    }

    /// A moto someone else runs (started with `MOTO_PORT` set to its port, so its Step Functions
    /// can call it back). Turns on Step Functions execution, as [`Moto::start`] does.
    pub async fn connect(endpoint: &str) -> Result<Self, Error> {
        let moto = Moto { _server: None, endpoint: endpoint.trim_end_matches('/').to_owned() };
        moto.configure().await?;
        Ok(moto)
    }

    async fn configure(&self) -> Result<(), Error> {
        let response = reqwest::Client::new()
            .post(format!("{}/moto-api/config", self.endpoint()))
            .json(&serde_json::json!({"stepfunctions": {"execute_state_machine": true}}))
            .send()
            .await
            .map_err(|e| Error::Start("moto", format!("configuring moto: {e}")))?;
        if !response.status().is_success() {
            return Err(Error::Start("moto", format!("configuring moto: HTTP {}", response.status())));
        }
        Ok(())
    }

    /// The server's process id, when we started it.
    pub fn pid(&self) -> Option<u32> {
        self._server.as_ref().map(PythonServer::pid)
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// SDK configuration pointing at this moto, with dummy credentials and `us-east-1`.
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "moto"),
            ))
            .build()
    }

    /// Creates a table from its template declaration under `name` and returns the name.
    pub async fn create_table(&self, spec: &TableSpec, name: &str) -> Result<String, Error> {
        let client = aws_sdk_dynamodb::Client::new(&self.sdk_config());
        spec.create(&client, name).await?;
        Ok(name.to_owned())
    }

    /// Creates the project template's table `logical_id` (template.yaml, as deployed) under a
    /// fresh name starting with `prefix`, and returns the name: each test gets its own table.
    pub async fn create_project_table(&self, logical_id: &str, prefix: &str) -> Result<String, Error> {
        let template = crate::Template::load_project()?;
        let spec = template.table(logical_id)?;
        self.create_table(&spec, &crate::unique_name(prefix)).await
    }

    /// The DynamoDB capacity used so far, in on-demand request units (see `moto_server.py`).
    /// Only a moto started through our launcher counts it.
    pub async fn dynamodb_usage(&self) -> Result<DynamoDbUsage, Error> {
        self.get_local("/_local/dynamodb-usage", "dynamodb usage").await
    }

    /// Keeps DynamoDB stream records for `retention` instead of AWS's 24 hours (the records
    /// older are trimmed; iterators past them read on). A long run's memory, not its behaviour:
    /// consumers read within seconds. Only a moto started through our launcher has it.
    pub async fn set_stream_retention(&self, retention: std::time::Duration) -> Result<(), Error> {
        let body = serde_json::json!({"stream_retention_seconds": retention.as_secs_f64()});
        self.post_local("/_local/config", &body, "stream retention").await.map(drop)
    }

    /// What the emulator holds that grows in a long run (items and stream records per table,
    /// executions, queued messages, archived events, each process's RSS), as our launcher's
    /// `GET /_local/memory` reports it.
    pub async fn holdings(&self) -> Result<serde_json::Value, Error> {
        self.get_local("/_local/memory", "emulator holdings").await
    }

    /// For the next `duration`, every EventBridge PutEvents answers with all its entries refused
    /// with `error_code` (`ThrottlingException` or `InternalFailure`, the retryable codes), as
    /// EventBridge does under throttling: relays and Step Functions' putEvents tasks see it.
    /// A zero duration switches it off. Only a moto started through our launcher has it.
    pub async fn refuse_put_events(
        &self,
        duration: std::time::Duration,
        error_code: &str,
    ) -> Result<BusFaultState, Error> {
        let body = serde_json::json!({"put_events": {"seconds": duration.as_secs_f64(), "error_code": error_code}});
        let response = self.post_local("/_local/faults", &body, "bus faults").await?;
        response.json().await.map_err(|e| Error::Aws(format!("bus faults (is this our moto_server.py?): {e}")))
    }

    /// The bus faults switched on and what they refused so far.
    pub async fn bus_faults(&self) -> Result<BusFaultState, Error> {
        self.get_local("/_local/faults", "bus faults").await
    }

    /// A JSON `GET` of one of our launcher's `/_local/` endpoints.
    async fn get_local<T: serde::de::DeserializeOwned>(&self, path: &str, what: &str) -> Result<T, Error> {
        let response =
            reqwest::get(format!("{}{path}", self.endpoint)).await.map_err(|e| Error::Aws(format!("{what}: {e}")))?;
        response.json().await.map_err(|e| Error::Aws(format!("{what} (is this our moto_server.py?): {e}")))
    }

    /// A JSON `POST` to one of our launcher's `/_local/` endpoints; an answer other than 2xx is
    /// an error with its text.
    async fn post_local(&self, path: &str, body: &serde_json::Value, what: &str) -> Result<reqwest::Response, Error> {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.endpoint))
            .json(body)
            .send()
            .await
            .map_err(|e| Error::Aws(format!("{what}: {e}")))?;
        if !response.status().is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(Error::Aws(format!("{what} refused: {text}")));
        }
        Ok(response)
    }

    /// Creates a Standard state machine and returns its ARN. moto checks no IAM: the role is a
    /// placeholder.
    pub async fn create_state_machine(&self, name: &str, definition: &str) -> Result<String, Error> {
        let client = aws_sdk_sfn::Client::new(&self.sdk_config());
        let output = client
            .create_state_machine()
            .name(name)
            .definition(definition)
            .role_arn("arn:aws:iam::123456789012:role/local-state-machine")
            .send()
            .await
            .map_err(Error::aws)?;
        Ok(output.state_machine_arn)
    }

    /// Creates an event bus and returns its name.
    pub async fn create_bus(&self, name: &str) -> Result<String, Error> {
        let client = aws_sdk_eventbridge::Client::new(&self.sdk_config());
        client.create_event_bus().name(name).send().await.map_err(Error::aws)?;
        Ok(name.to_owned())
    }
}
