//! The application core: use cases over the ports. HTTP and Lambda specifics stay outside.

use std::sync::Arc;

use chrono::Utc;
use shared_core::Conditional;
use shared_core::OrderId;
use shared_core::validation::check_identifier;
use shared_core::{CorrelationId, InvalidParam};

use crate::domain::{Order, OrderStatus, PlaceOrderRequest, Refusal};
use crate::events;
use crate::ports::{CreateOutcome, IdempotencyClaim, OrderPage, OrderStore, StoreError};

pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const MAX_PAGE_SIZE: usize = 100;
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    /// 400: fields that are not valid, each named.
    #[error("invalid request")]
    Invalid(Vec<InvalidParam>),
    /// 422: valid fields that break a rule across them (a sku on two lines).
    #[error("valid fields that break a rule across them")]
    Unprocessable(Vec<InvalidParam>),
    /// 404 (also for another customer's order).
    #[error("order {0} not found")]
    NotFound(OrderId),
    /// 422: the key made an order from another body.
    #[error("the idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    /// 409: the order's status does not allow it.
    #[error(transparent)]
    Illegal(#[from] crate::domain::IllegalTransition),
    /// 503: every attempt lost its race; the client retries.
    #[error("order {0} kept changing under concurrent writes; try again")]
    Contended(OrderId),
    /// 500, its cause logged and never sent.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many times a status change reads and writes again after losing a race.
const UPDATE_ATTEMPTS: usize = 3;

/// What `place_order` did.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub order: Order,
    /// True when an idempotency key matched an earlier identical request: nothing new was written.
    pub replayed: bool,
}

#[derive(Clone)]
pub struct OrderService {
    store: Arc<dyn OrderStore>,
}

impl OrderService {
    pub fn new(store: Arc<dyn OrderStore>) -> Self {
        Self { store }
    }

    /// The store, for the parking rules (`crate::sweeper::park`) that share it.
    pub fn store(&self) -> Arc<dyn OrderStore> {
        self.store.clone()
    }

    /// Validates and records a new order with its `OrderCreated` event (through the outbox).
    /// With an idempotency key, repeating the same request returns the first order.
    pub async fn place_order(
        &self,
        request: PlaceOrderRequest,
        correlation_id: &CorrelationId,
        idempotency_key: Option<&str>,
    ) -> Result<Placed, OrdersError> {
        let claim = idempotency_key
            .map(|key| {
                let valid = !key.is_empty()
                    && key.len() <= MAX_IDEMPOTENCY_KEY_LEN
                    && key.bytes().all(|b| b.is_ascii_graphic());
                if !valid {
                    return Err(OrdersError::Invalid(vec![InvalidParam::new(
                        "Idempotency-Key",
                        format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"),
                    )]));
                }
                let canonical = serde_json::to_string(&request).expect("requests serialise");
                Ok(IdempotencyClaim {
                    customer_id: request.customer_id.clone(),
                    key: key.to_owned(),
                    request: canonical,
                })
            })
            .transpose()?;
        let valid = request.validate().map_err(|refusal| match refusal {
            Refusal::Invalid(violations) => OrdersError::Invalid(violations),
            Refusal::Unprocessable(violations) => OrdersError::Unprocessable(violations),
        })?;
        let order = Order::place(valid, Utc::now());
        let created = events::order_created(&order, correlation_id);
        match self.store.create(&order, &[created], claim.as_ref()).await {
            Ok(CreateOutcome::Created) => {
                tracing::info!(order_id = %order.id, lines = order.lines.len(), "order placed");
                shared::metrics::order_placed();
                Ok(Placed { order, replayed: false })
            }
            Ok(CreateOutcome::Replayed(id)) => {
                let order = self.store.get(id).await?.ok_or(OrdersError::NotFound(id))?;
                tracing::info!(order_id = %order.id, "idempotent replay of an order placement");
                Ok(Placed { order, replayed: true })
            }
            Err(StoreError::IdempotencyMismatch) => Err(OrdersError::IdempotencyKeyReused),
            Err(other) => Err(other.into()),
        }
    }

    pub async fn get_order(&self, id: OrderId) -> Result<Order, OrdersError> {
        self.store.get(id).await?.ok_or(OrdersError::NotFound(id))
    }

    /// The order if it is `customer_id`'s; another customer's order is `NotFound`, exactly like
    /// an order that does not exist, so that a caller cannot learn which ids exist.
    pub async fn get_customer_order(&self, id: OrderId, customer_id: &str) -> Result<Order, OrdersError> {
        match self.store.get(id).await? {
            Some(order) if order.customer_id == customer_id => Ok(order),
            _ => Err(OrdersError::NotFound(id)),
        }
    }

    pub async fn list_orders(
        &self,
        customer_id: &str,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<OrderPage, OrdersError> {
        let mut violations = Vec::new();
        check_identifier("customer_id", customer_id, &mut violations);
        let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            violations.push(InvalidParam::new("limit", format!("must be between 1 and {MAX_PAGE_SIZE}")));
        }
        if !violations.is_empty() {
            return Err(OrdersError::Invalid(violations));
        }
        match self.store.list_by_customer(customer_id, limit, cursor).await {
            Err(StoreError::InvalidCursor) => {
                Err(OrdersError::Invalid(vec![InvalidParam::new("cursor", "is not a cursor returned by this query")]))
            }
            other => Ok(other?),
        }
    }

    /// Confirms a pending order with its `OrderConfirmed` event. Confirming a confirmed order
    /// changes nothing; a cancelled one cannot be confirmed.
    pub async fn confirm(&self, id: OrderId, correlation_id: &CorrelationId) -> Result<Order, OrdersError> {
        self.change_status(id, correlation_id, |order| {
            if order.status == OrderStatus::Confirmed {
                return Ok(false);
            }
            order.confirm(Utc::now())?;
            Ok(true)
        })
        .await
    }

    /// Cancels a pending order with its `OrderCancelled` event carrying `reason`. Cancelling a
    /// cancelled order changes nothing; a confirmed one cannot be cancelled.
    pub async fn cancel(
        &self,
        id: OrderId,
        reason: &str,
        correlation_id: &CorrelationId,
    ) -> Result<Order, OrdersError> {
        self.change_status(id, correlation_id, |order| {
            if order.status == OrderStatus::Cancelled {
                return Ok(false);
            }
            order.cancel(reason, Utc::now())?;
            Ok(true)
        })
        .await
    }

    /// Reads the order, applies `change` (which says whether anything changed), and writes it
    /// with its event under optimistic locking, reading again if someone wrote in between.
    async fn change_status(
        &self,
        id: OrderId,
        correlation_id: &CorrelationId,
        change: impl Fn(&mut Order) -> Result<bool, crate::domain::IllegalTransition>,
    ) -> Result<Order, OrdersError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let mut order = self.store.get(id).await?.ok_or(OrdersError::NotFound(id))?;
            if !change(&mut order)? {
                return Ok(order);
            }
            let event = match order.status {
                OrderStatus::Confirmed => events::order_confirmed(&order, correlation_id),
                _ => events::order_cancelled(&order, correlation_id),
            };
            match self.store.update(&order, &[event]).await {
                Ok(Conditional::Applied) => {
                    tracing::info!(order_id = %id, status = ?order.status, "order status changed");
                    let saga = (order.updated_at - order.created_at).to_std().unwrap_or_default();
                    match (&order.status, &order.cancellation_reason) {
                        (OrderStatus::Confirmed, _) => shared::metrics::order_confirmed(saga),
                        (OrderStatus::Cancelled, reason) => {
                            shared::metrics::order_cancelled(reason.as_deref().unwrap_or("unknown"), saga)
                        }
                        _ => {}
                    }
                    return Ok(order);
                }
                Ok(Conditional::Lost) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(OrdersError::Contended(id))
    }
}
