//! The DynamoDB breaker state store against moto: two breakers (two Lambda instances) share it.

use std::sync::Arc;
use std::time::Duration;

use local_aws::Moto;
use shared::resilience::store::{BreakerStateStore, DynamoDbBreakerStore, SharedState};
use shared::resilience::{BreakerConfig, BreakerState, CircuitBreaker, Rejection, SlidingWindow};

async fn store(moto: &Moto) -> Arc<DynamoDbBreakerStore> {
    // Any service table works: the breaker item lives in the caller's own table.
    let table = moto.create_project_table("InventoryTable", "breakers").await.unwrap();
    Arc::new(DynamoDbBreakerStore::new(aws_sdk_dynamodb::Client::new(&moto.sdk_config()), table))
}

fn breaker(store: Arc<DynamoDbBreakerStore>) -> CircuitBreaker {
    let config = BreakerConfig {
        window: SlidingWindow::Count(4),
        minimum_calls: 4,
        wait_in_open: Duration::from_secs(30),
        shared_state_refresh: Duration::ZERO,
        ..BreakerConfig::default()
    };
    CircuitBreaker::new("payment-provider", config).unwrap().with_shared_state(store)
}

#[tokio::test]
async fn an_instance_that_opens_the_circuit_opens_it_for_the_others() {
    let moto = Moto::start().await.unwrap();
    let store = store(&moto).await;
    let (first, second) = (breaker(store.clone()), breaker(store.clone()));
    for _ in 0..4 {
        let permit = first.acquire().await.unwrap();
        first.record(permit, true).await;
    }
    assert_eq!(first.state(), BreakerState::Open);
    let rejection = second.acquire().await.unwrap_err();
    assert!(
        matches!(rejection, Rejection::Open { remaining } if remaining > Duration::from_secs(25) && remaining <= Duration::from_secs(30)),
        "{rejection:?}"
    );
    assert_eq!(second.state(), BreakerState::Open);
}

#[tokio::test]
async fn writes_never_undo_newer_knowledge() {
    let moto = Moto::start().await.unwrap();
    let store = store(&moto).await;
    assert_eq!(store.load("dep").await.unwrap(), None);
    store.save("dep", SharedState::Open { remaining: Duration::from_secs(60) }).await.unwrap();
    // A shorter open period and a close while it is open are both ignored.
    store.save("dep", SharedState::Open { remaining: Duration::from_secs(5) }).await.unwrap();
    store.save("dep", SharedState::Closed).await.unwrap();
    let Some(SharedState::Open { remaining }) = store.load("dep").await.unwrap() else { panic!("still open") };
    assert!(remaining > Duration::from_secs(55), "{remaining:?}");

    store.save("other", SharedState::Open { remaining: Duration::from_millis(1) }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    store.save("other", SharedState::Closed).await.unwrap();
    assert_eq!(store.load("other").await.unwrap(), Some(SharedState::Closed));
}
