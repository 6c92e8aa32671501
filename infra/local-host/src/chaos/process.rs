//! The local system as a separate process, so that it can be killed (SIGKILL, no chance to clean
//! up) and started again against the same emulator and state directory.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::Error;

pub struct HostProcess {
    child: Child,
    args: Vec<String>,
    binary: PathBuf,
    endpoint: String,
}

impl HostProcess {
    /// Starts `local-host` with `args` against the emulator at `endpoint` and waits until it is ready.
    pub fn start(binary: &Path, endpoint: &str, args: Vec<String>) -> Result<Self, Error> {
        let child = spawn(binary, endpoint, &args)?;
        Ok(Self { child, args, binary: binary.to_owned(), endpoint: endpoint.to_owned() })
    }

    /// SIGKILL, then the same command again.
    pub fn kill_and_restart(&mut self) -> Result<(), Error> {
        self.child.kill().map_err(|e| Error::Setup(format!("killing the host: {e}")))?;
        let _ = self.child.wait();
        self.child = spawn(&self.binary, &self.endpoint, &self.args)?;
        Ok(())
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(binary: &Path, endpoint: &str, args: &[String]) -> Result<Child, Error> {
    let mut child = Command::new(binary)
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::Setup(format!("starting {}: {e}", binary.display())))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (ready, is_ready) = mpsc::channel();
    // Drains the invocation log for as long as the host runs (a full pipe would stall it).
    // CHAOS_HOST_LOG=path keeps the host's invocation log (every run appends to it).
    let mut keep = std::env::var_os("CHAOS_HOST_LOG")
        .and_then(|path| std::fs::OpenOptions::new().create(true).append(true).open(path).ok());
    std::thread::spawn(move || {
        let mut banner = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(file) = keep.as_mut() {
                let _ = writeln!(file, "{line}");
            }
            if line.starts_with("ready.") {
                let _ = ready.send(Ok(()));
            } else if banner.len() < 40 {
                banner.push(line);
            }
        }
        let _ = ready.send(Err(banner.join("\n")));
    });
    match is_ready.recv_timeout(Duration::from_secs(120)) {
        Ok(Ok(())) => Ok(child),
        Ok(Err(banner)) => Err(Error::Setup(format!("the host exited before it was ready:\n{banner}"))),
        Err(_) => Err(Error::Setup("the host was not ready within 120 s".into())),
    }
}
