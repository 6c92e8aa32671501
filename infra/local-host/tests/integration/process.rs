//! The `local-host` binary (what `make local` runs): it reports where everything listens, Ctrl-C
//! stops it, the emulator it started keeps the shop's state for the next run, and `--stop` (or
//! `--reset`) ends that emulator.

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

struct Running {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    base_url: String,
    moto: String,
    banner: Vec<String>,
}

fn start(state_dir: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_local-host"))
        .args(["--port", "0", "--stack", "process-test", "--state-dir"])
        .arg(state_dir)
        .env_remove("AWS_ENDPOINT_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut base_url, mut moto, mut banner) = (None, None, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(90);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("HTTP APIs   ") {
            base_url = Some(url.trim().to_owned());
        }
        if let Some(endpoint) = line.strip_prefix("moto        ") {
            moto = Some(endpoint.trim().to_owned());
        }
        if line.starts_with("ready.") {
            break;
        }
        banner.push(line);
        assert!(Instant::now() < deadline, "the local system did not get ready");
    }
    let base_url = base_url.expect("the HTTP address is printed");
    Running { child, lines, base_url, moto: moto.expect("the moto endpoint is printed"), banner }
}

fn interrupt(mut running: Running) {
    let status = Command::new("kill").args(["-INT", &running.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = running.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(running.lines.any(|l| l.unwrap().starts_with("stopping...")));
}

fn answers(moto: &str) -> bool {
    std::net::TcpStream::connect(moto.trim_start_matches("http://")).is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_the_local_system_and_the_next_run_carries_on_with_its_state() {
    let state_dir = std::env::temp_dir().join(local_aws::unique_name("local-host-state"));
    let http = reqwest::Client::new();

    let first = start(&state_dir);
    assert!(first.banner.iter().any(|l| l.contains("provisioned fresh")), "{:?}", first.banner);
    // Stocked through the public API as an admin of the running host's token issuer.
    let token = http
        .post(format!("{}/_local/token", first.base_url))
        .json(&serde_json::json!({"sub": "ops", "groups": ["admin"]}))
        .send()
        .await
        .unwrap();
    let token: serde_json::Value = token.json().await.unwrap();
    let admin = token["access_token"].as_str().unwrap().to_owned();
    let product = serde_json::json!({"name": "Mug", "price": {"amount_minor": 1250, "currency": "EUR"}, "low_stock_threshold": 1});
    let put = http.put(format!("{}/api/products/SKU-KEPT", first.base_url)).bearer_auth(&admin).json(&product);
    assert_eq!(put.send().await.unwrap().status(), 200);
    let restock = serde_json::json!({"restock_id": "r1", "quantity": 7});
    let post = http.post(format!("{}/api/products/SKU-KEPT/restock", first.base_url)).bearer_auth(&admin);
    assert_eq!(post.json(&restock).send().await.unwrap().status(), 200);
    let moto = first.moto.clone();
    interrupt(first);
    assert!(answers(&moto), "the emulator keeps the state after Ctrl-C");

    let second = start(&state_dir);
    assert_eq!(second.moto, moto, "the second run uses the same emulator");
    assert!(second.banner.iter().any(|l| l.contains("resumed")), "{:?}", second.banner);
    let got = http.get(format!("{}/api/products/SKU-KEPT", second.base_url)).send().await.unwrap();
    assert_eq!(got.status(), 200, "the product of the first run is still there");
    let got: serde_json::Value = got.json().await.unwrap();
    assert_eq!(got["available"], 7);
    interrupt(second);

    let stop = Command::new(env!("CARGO_BIN_EXE_local-host"))
        .args(["--stop", "--stack", "process-test", "--state-dir"])
        .arg(&state_dir)
        .status()
        .unwrap();
    assert!(stop.success());
    let stopped = Instant::now() + Duration::from_secs(5);
    while answers(&moto) {
        assert!(Instant::now() < stopped, "--stop did not end the emulator at {moto}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_dir_all(&state_dir);
}
