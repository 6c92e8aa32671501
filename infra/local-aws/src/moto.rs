use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::{Error, TableSpec, project_root};

/// A moto server on 127.0.0.1 and a free port, stopped when dropped.
pub struct Moto {
    child: Child,
    endpoint: String,
    log_path: PathBuf,
}

const START_TIMEOUT: Duration = Duration::from_secs(30);

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
        if !python.exists() {
            return Err(Error::MotoMissing { path: python });
        }
        let mut last_error = String::new();
        // Another process can take the port between our probe and moto's bind: try again then.
        for _ in 0..3 {
            let port = free_port()?;
            let log_path = std::env::temp_dir().join(format!("moto-{port}-{}.log", std::process::id()));
            let log = File::create(&log_path).map_err(|e| Error::MotoStart(format!("log file: {e}")))?;
            let child = Command::new(&python)
                .arg(Self::launcher())
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| Error::MotoStart(e.to_string()))?)
                .stderr(log)
                .spawn()
                .map_err(|e| Error::MotoStart(format!("spawning {}: {e}", python.display())))?;
            let mut moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}"), log_path };
            match moto.wait_ready().await {
                Ok(()) => {
                    moto.configure().await?;
                    return Ok(moto);
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(Error::MotoStart(last_error))
    }

    async fn wait_ready(&mut self) -> Result<(), Error> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::MotoStart(format!(
                    "moto exited with {status} (is moto[server] installed? `make setup` installs it): {}",
                    self.log_tail()
                )));
            }
            if let Ok(response) = client.get(format!("{}/moto-api/", self.endpoint)).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::MotoStart(format!("no answer after {START_TIMEOUT:?}: {}", self.log_tail())));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn configure(&self) -> Result<(), Error> {
        let response = reqwest::Client::new()
            .post(format!("{}/moto-api/config", self.endpoint))
            .json(&serde_json::json!({"stepfunctions": {"execute_state_machine": true}}))
            .send()
            .await
            .map_err(|e| Error::MotoStart(format!("configuring moto: {e}")))?;
        if !response.status().is_success() {
            return Err(Error::MotoStart(format!("configuring moto: HTTP {}", response.status())));
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// SDK configuration pointing at this moto, with dummy credentials and `us-east-1`.
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
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

    /// Creates an event bus and returns its name.
    pub async fn create_bus(&self, name: &str) -> Result<String, Error> {
        let client = aws_sdk_eventbridge::Client::new(&self.sdk_config());
        client.create_event_bus().name(name).send().await.map_err(Error::aws)?;
        Ok(name.to_owned())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| Error::MotoStart(format!("no free port: {e}")))?;
    Ok(listener.local_addr().map_err(|e| Error::MotoStart(e.to_string()))?.port())
}
