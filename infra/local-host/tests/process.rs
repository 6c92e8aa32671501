//! The `local-host` binary (what `make local` runs): it reports where everything listens, and
//! Ctrl-C stops every process it started.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn ctrl_c_stops_the_local_system_and_the_moto_it_started() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_local-host"))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut moto = None;
    let deadline = Instant::now() + Duration::from_secs(90);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(endpoint) = line.strip_prefix("moto        ") {
            moto = Some(endpoint.trim().to_owned());
        }
        if line.starts_with("ready.") {
            break;
        }
        assert!(Instant::now() < deadline, "the local system did not get ready");
    }
    let moto = moto.expect("the moto endpoint is printed");
    let address = moto.trim_start_matches("http://").to_owned();
    assert!(std::net::TcpStream::connect(&address).is_ok(), "moto answers while the system runs");

    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(lines.any(|l| l.unwrap() == "stopping..."));
    let stopped = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(&address).is_ok() {
        assert!(Instant::now() < stopped, "moto at {moto} outlived the local system");
        std::thread::sleep(Duration::from_millis(100));
    }
}
