//! Python servers the tests and the local system start (moto, localstripe): on 127.0.0.1 and a
//! free port, logging to a temporary file whose tail explains a failed start, stopped on drop.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

const START_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct PythonServer {
    child: Child,
    pub(crate) base_url: String,
    log_path: PathBuf,
    name: &'static str,
}

impl PythonServer {
    /// Runs `python script -H 127.0.0.1 -p PORT` and waits until `GET ready_path` answers 2xx.
    pub(crate) async fn start(
        python: &Path,
        script: &Path,
        name: &'static str,
        ready_path: &str,
    ) -> Result<Self, Error> {
        Self::start_in(python, script, name, ready_path, false).await
    }

    /// Like [`PythonServer::start`]; `own_group` puts the server in a process group of its own,
    /// so the Ctrl-C of the terminal that started us does not reach it (see [`PythonServer::detach`]).
    pub(crate) async fn start_in(
        python: &Path,
        script: &Path,
        name: &'static str,
        ready_path: &str,
        own_group: bool,
    ) -> Result<Self, Error> {
        if !python.exists() {
            return Err(Error::PythonMissing { path: python.to_owned(), tool: name });
        }
        let mut last_error = String::new();
        // Another process can take the port between our probe and the server's bind: try again.
        for _ in 0..3 {
            let port = free_port()?;
            let log_path = std::env::temp_dir().join(format!("{name}-{port}-{}.log", std::process::id()));
            let log = File::create(&log_path).map_err(|e| Error::Start(name, format!("log file: {e}")))?;
            let mut command = Command::new(python);
            if own_group {
                std::os::unix::process::CommandExt::process_group(&mut command, 0);
            }
            let child = command
                .arg(script)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                // moto calls itself (Step Functions putting events, for one) on this port.
                .env("MOTO_PORT", port.to_string())
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| Error::Start(name, e.to_string()))?)
                .stderr(log)
                .spawn()
                .map_err(|e| Error::Start(name, format!("spawning {}: {e}", python.display())))?;
            let mut server = PythonServer { child, base_url: format!("http://127.0.0.1:{port}"), log_path, name };
            match server.wait_ready(ready_path).await {
                Ok(()) => return Ok(server),
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(Error::Start(name, last_error))
    }

    async fn wait_ready(&mut self, ready_path: &str) -> Result<(), Error> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::Start(
                    self.name,
                    format!("exited with {status} (`make setup` installs the dev tools): {}", self.log_tail()),
                ));
            }
            if let Ok(response) = client.get(format!("{}{ready_path}", self.base_url)).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Start(self.name, format!("no answer after {START_TIMEOUT:?}: {}", self.log_tail())));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Leaves the server running after we are gone; returns its process id. Its log stays at
    /// [`PythonServer::log_path`].
    pub(crate) fn detach(self) -> u32 {
        let pid = self.child.id();
        std::mem::forget(self);
        pid
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

fn free_port() -> Result<u16, Error> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| Error::Start("server", format!("no free port: {e}")))?;
    Ok(listener.local_addr().map_err(|e| Error::Start("server", e.to_string()))?.port())
}

/// localstripe, a third-party Stripe emulator from PyPI (installed by `make setup`), for proving
/// a Stripe client against something this project did not write. It ignores `Idempotency-Key`,
/// knows cards by number (create a payment method first) and accepts any `sk_...` key.
pub struct LocalStripe {
    server: PythonServer,
}

impl LocalStripe {
    pub async fn start() -> Result<Self, Error> {
        let python = crate::Moto::python();
        let script = crate::project_root().join("infra/local-aws/localstripe_server.py");
        // localstripe answers the JS shim without a key: a cheap readiness probe.
        let server = PythonServer::start(&python, &script, "localstripe", "/js.stripe.com/v3/").await?;
        Ok(Self { server })
    }

    pub fn base_url(&self) -> &str {
        &self.server.base_url
    }
}
