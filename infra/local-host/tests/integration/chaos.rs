//! The whole local system, long and rude: 1,000 orders from concurrent clients while the payment
//! provider fails, hangs, slows down and goes away; duplicate and conflicting requests; the host
//! SIGKILLed and restarted in the middle. Every invariant of `local_host::chaos` must hold at the
//! end: nothing pending, money and stock conserved, one saga per order, every outbox record on
//! the bus. `CHAOS_ORDERS` changes the count (`make soak` runs 10,000 with a per-minute report).
//! 1,000 orders take about 5 minutes on 2 cores (measured alone: 302 s, 304 s, 340 s); moto,
//! one Python process, is the bottleneck (`infra/local-aws/moto_speedups.py`).

use std::time::Duration;

use local_host::chaos::{ChaosConfig, in_flight, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_orders_through_faults_duplicates_and_a_killed_host_settle_with_every_invariant_held() {
    let orders = std::env::var("CHAOS_ORDERS").ok().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let config = ChaosConfig {
        host_binary: env!("CARGO_BIN_EXE_local-host").into(),
        orders,
        clients: 8,
        kill_at: Some(0.5),
        settle_timeout: Duration::from_secs(240),
        max_in_flight: in_flight(),
        stream_retention: None,
    };
    let report = run(config).await.expect("the chaos run starts (moto is installed by `make setup`)");
    println!("{}", report.table());
    assert_eq!(report.restarts, 1, "the host was killed and restarted once");
    assert!(
        report.violations.is_empty(),
        "{} violations:\n{}",
        report.violations.len(),
        report.violations.iter().take(60).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(report.orders >= orders, "{} of {orders} orders were placed", report.orders);
}
