//! Which of the template's rules an event on the bus matches is decided here, with the
//! EventBridge pattern language through quamina ([`crate::filter`]), not by the emulator.
//!
//! The emulator only carries events: each bus gets one catch-all rule (`{"account": [<the
//! account>]}`: every event put on a bus of the account carries it) whose SQS target is the
//! router's queue. Each template rule keeps its own queue (an [`EventTap::unfed`] queue the bus
//! does not fill), and its consumer ([`super::rule_to_function`], [`super::rule_to_machine`])
//! reads it exactly as before: its own retries, DLQ, visibility and ack. The router reads an
//! event, sends it to the queue of every rule whose pattern matches, and deletes it from its own
//! queue only once every one of those queues has it. So a target that fails never makes another
//! target see the event again: per-target semantics are those of one rule, one queue, as
//! EventBridge delivers to each target independently. A router killed between two sends (or
//! whose send failed) gets the event again after the visibility timeout and sends it to every
//! matching rule again: delivery is at least once, as EventBridge's is
//! (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html>), and every
//! handler is safe to run twice.

use std::collections::BTreeMap;
use std::time::Duration;

use local_aws::{EventTap, Moto};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::Error;
use crate::filter::Filter;

struct Route {
    rule: String,
    filter: Filter,
    queue: EventTap,
}

/// The template's rules per bus, gathered while the host starts, then [`Router::start`]ed.
#[derive(Default)]
pub struct Router {
    buses: BTreeMap<String, Vec<Route>>,
}

impl Router {
    /// The queue rule `name` (with `pattern`, on `bus`) is consumed from. A pattern quamina
    /// refuses stops the host, naming the rule.
    pub async fn queue(&mut self, moto: &Moto, bus: &str, name: &str, pattern: &Value) -> Result<EventTap, Error> {
        let filter = Filter::new([pattern]).map_err(|e| Error::Setup(format!("rule {name}: {e}")))?;
        let queue = EventTap::unfed(moto, bus, name, pattern).await?;
        self.buses.entry(bus.to_owned()).or_default().push(Route {
            rule: name.to_owned(),
            filter,
            queue: queue.clone(),
        });
        Ok(queue)
    }

    /// Creates each bus's catch-all rule and starts routing; once every rule is known, so that
    /// an event waiting from an earlier run reaches every rule it matches.
    pub async fn start(self, moto: &Moto, stack: &str) -> Result<Vec<JoinHandle<()>>, Error> {
        let mut tasks = Vec::new();
        for (i, (bus, routes)) in self.buses.into_iter().enumerate() {
            let name = crate::provision::physical_name(stack, &format!("BusRouter{i}"));
            let tap = EventTap::create(moto, &bus, &name, &every_event()).await?;
            let routes = std::sync::Arc::new(routes);
            for _ in 0..ROUTERS_PER_BUS {
                tasks.push(tokio::spawn(run(tap.clone(), routes.clone())));
            }
        }
        Ok(tasks)
    }
}

/// Routers reading each bus's queue at once: each takes up to 10 events per receive and hands
/// them on in one batch per rule, so routing costs a few emulator calls per ten events.
const ROUTERS_PER_BUS: usize = 4;

/// The pattern that matches every event of the account.
fn every_event() -> Value {
    serde_json::json!({"account": [crate::resolve::ACCOUNT]})
}

async fn run(tap: EventTap, routes: std::sync::Arc<Vec<Route>>) {
    loop {
        let received = match tap.receive_unacked(1).await {
            Ok(received) => received,
            Err(e) => {
                tracing::error!(error = %e, "polling the bus router's queue failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if received.is_empty() {
            continue;
        }
        let events: Vec<&Value> = received.iter().map(|m| &m.event).collect();
        let routed = route(&routes, &events).await;
        let done: Vec<&str> =
            received.iter().zip(&routed).filter(|(_, ok)| **ok).map(|(m, _)| m.receipt.as_str()).collect();
        if let Err(e) = tap.ack_batch(&done).await {
            tracing::error!(error = %e, "could not delete routed events");
        }
    }
}

/// Sends each of `events` to the queue of every rule it matches, one batch per rule; for each
/// event, whether every one of those queues took it.
async fn route(routes: &[Route], events: &[&Value]) -> Vec<bool> {
    let mut delivered = vec![true; events.len()];
    for route in routes {
        let matching: Vec<usize> = (0..events.len()).filter(|&i| route.filter.matches(events[i])).collect();
        if matching.is_empty() {
            continue;
        }
        let batch: Vec<Value> = matching.iter().map(|&i| events[i].clone()).collect();
        if let Err(e) = route.queue.send_batch(&batch).await {
            tracing::error!(error = %e, rule = route.rule, "could not hand events to their rule");
            for i in matching {
                delivered[i] = false;
            }
        }
    }
    delivered
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event two rules match reaches both rules' queues once (each waits 6 s for a second
    /// copy); one no rule matches reaches none.
    #[tokio::test]
    async fn an_event_matching_two_rules_reaches_both_once() {
        let moto = Moto::start().await.expect("moto (make setup)");
        moto.create_bus("bus").await.unwrap();
        let mut router = Router::default();
        let orders =
            router.queue(&moto, "bus", "orders", &serde_json::json!({"source": ["shop.orders"]})).await.unwrap();
        let created = router
            .queue(&moto, "bus", "created", &serde_json::json!({"detail-type": [{"prefix": "OrderCreat"}]}))
            .await
            .unwrap();
        let saga = router.queue(&moto, "bus", "saga", &serde_json::json!({"source": ["shop.saga"]})).await.unwrap();
        let tasks = router.start(&moto, "stack").await.unwrap();
        let events = aws_sdk_eventbridge::Client::new(&moto.sdk_config());
        for (source, detail_type) in [("shop.orders", "OrderCreated"), ("shop.payments", "PaymentFailed")] {
            let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name("bus")
                .source(source)
                .detail_type(detail_type)
                .detail(r#"{"order_id": "o-1"}"#)
                .build();
            events.put_events().entries(entry).send().await.unwrap();
        }
        let (from_orders, from_created) =
            tokio::join!(orders.receive(2, Duration::from_secs(6)), created.receive(2, Duration::from_secs(6)));
        let (from_orders, from_created) = (from_orders.unwrap(), from_created.unwrap());
        for got in [&from_orders, &from_created] {
            assert_eq!(got.len(), 1, "once: {got:?}");
            assert_eq!(got[0]["detail-type"], "OrderCreated");
            assert_eq!(got[0]["detail"]["order_id"], "o-1", "the event as the bus delivered it");
        }
        assert!(saga.poll().await.unwrap().is_empty(), "a rule the event does not match gets nothing");
        for task in tasks {
            task.abort();
        }
    }
}
