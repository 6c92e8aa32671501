//! What the orders tests share.

use orders::adapters::memory::InMemoryOrderStore;

/// The detail-types of the events the store's outbox holds, oldest first.
pub fn event_types(store: &InMemoryOrderStore) -> Vec<String> {
    store.outbox().into_iter().map(|e| e.entry.detail_type).collect()
}
