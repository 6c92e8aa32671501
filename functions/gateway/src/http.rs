//! The gateway's public routes as an axum router, and the OpenAPI document generated from them.
//! Both come from one list of handlers ([`operations!`]) and each handler's `#[utoipa::path]`
//! (its path and methods), so the router and the document cannot disagree about paths and
//! methods. The router reads only the path and methods; the document, schemas and all, is built
//! the first time it is asked for, not at cold start (`make bench-coldstart`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::ApiError;
use shared::http::problem::PROBLEM_CONTENT_TYPE;
use shared::http::{StrictJson, finish_router};
use shared::resilience::{CallError, HttpError, HttpReply};
use shared_core::CorrelationId;
use shared_core::correlation::CORRELATION_HEADER;
use utoipa::openapi::header::Header;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Response as DocResponse};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{
    GatewayMessage, Order, OrderList, OrderView, Part, Payment, PlaceOrder, Problem, Product, ProductSpec, Reservation,
    Restock,
};
use crate::caller::Caller;
use crate::legacy::Legacy;
use crate::upstream::{Failure, Upstreams};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Shop API",
        description = "The public API of the shop: orders, their fulfilment, and the catalogue. \
            Every error is an RFC 9457 problem document (`application/problem+json`). \
            Every response carries `X-Correlation-Id`: the client's, or a new one. \
            Every operation but reading the catalogue and this document needs a bearer token (a JWT \
            from the shop's identity provider: the Cognito user pool, or the issuer the stack was \
            deployed with); API Gateway refuses a missing, malformed, expired, wrongly signed or \
            wrong-audience token with 401 before the shop sees the request. The customer is the \
            token's `sub`; admin operations need the admin group in `cognito:groups`. \
            Routes not migrated off the legacy backend yet (`LEGACY_ROUTES`) are proxied to it \
            and are not described here."
    ),
    tags((name = "orders", description = "Placing orders and following their fulfilment"),
         (name = "catalogue", description = "Products and their stock"),
         (name = "meta", description = "This document")),
    modifiers(&BearerScheme)
)]
struct ApiDoc;

/// The security scheme of every protected operation: a JWT bearer token.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "An access or ID token of the shop's identity provider, `Authorization: Bearer <token>`. \
                 Locally: `make token` or `POST /_local/token`.",
            ))
            .build();
        openapi.components.get_or_insert_default().add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// The name of the security scheme in the document.
pub const BEARER: &str = "bearer";

/// Every operation of the public API, named once: `$apply!(handler, ...)`.
macro_rules! operations {
    ($apply:ident) => {
        $apply!(place_order, list_orders, get_order, get_product, put_product, restock, get_openapi)
    };
}

/// The documented routes, still waiting for their state: the OpenAPI document of every operation.
fn documented() -> OpenApiRouter<Arc<Upstreams>> {
    macro_rules! document {
        ($($handler:ident),+) => { OpenApiRouter::with_openapi(ApiDoc::openapi())$(.routes(routes!($handler)))+ };
    }
    operations!(document)
}

/// The served routes: each operation at the path and methods of its `#[utoipa::path]`, without
/// building its documentation (operation objects and schemas), which `utoipa_axum::routes!`
/// does eagerly. That was most of the gateway's cold start beyond hello world's.
fn served() -> Router<Arc<Upstreams>> {
    macro_rules! serve {
        ($($handler:ident),+) => {{
            use utoipa_axum::PathItemExt as _;
            let router = Router::new();
            $(let router = utoipa_axum::paste! {{
                let methods = <[<__path_ $handler>] as utoipa::Path>::methods();
                let method_router = methods
                    .iter()
                    .fold(axum::routing::MethodRouter::new(), |r, m| r.on(m.to_method_filter(), $handler));
                router.route(&<[<__path_ $handler>] as utoipa::Path>::path(), method_router)
            }};)+
            router
        }};
    }
    operations!(serve)
}

/// The public API's OpenAPI 3.1 document (checked into `infra/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| {
            let mut document = documented().into_openapi();
            declare_headers(&mut document);
            document
        })
        .clone()
}

/// What `utoipa::path` cannot say about response headers: their patterns and that they are
/// always sent (`required`, which utoipa's `Header` lacks), and `X-Correlation-Id` on every
/// response of every operation but API Gateway's own 401, which the gateway never answers.
fn declare_headers(document: &mut utoipa::openapi::OpenApi) {
    fn header(schema: Object, description: &str, required: bool) -> RefOr<Header> {
        let mut header = Header::new(schema);
        header.description = Some(description.to_owned());
        if required {
            // OpenAPI 3.1's Header Object has `required`; utoipa's struct does not, but
            // serialises its extensions map flattened into the header.
            header.extensions.get_or_insert_default().insert("required".into(), true.into());
        }
        RefOr::T(header)
    }
    fn pattern(pattern: &str) -> Object {
        ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern)).build()
    }
    for item in document.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            for (status, response) in operation.responses.responses.iter_mut() {
                let RefOr::T(DocResponse { headers, .. }) = response else { continue };
                // API Gateway's own 401: the gateway never saw the request.
                if status == "401" {
                    continue;
                }
                for (name, declared) in headers.iter_mut() {
                    let RefOr::T(Header { description, .. }) = declared else { continue };
                    let description = description.clone().unwrap_or_default();
                    *declared = match name.as_str() {
                        "Location" => header(pattern(ORDER_LOCATION_PATTERN), &description, true),
                        "Idempotency-Key" => header(pattern(IDEMPOTENCY_KEY_PATTERN), &description, true),
                        "Retry-After" => header(
                            ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).build(),
                            &description,
                            true,
                        ),
                        "Idempotent-Replayed" => header(
                            ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["true"])).build(),
                            &description,
                            false,
                        ),
                        _ => continue,
                    };
                }
                headers.insert(
                    "X-Correlation-Id".into(),
                    header(
                        pattern(CORRELATION_ID_PATTERN),
                        "The request's `X-Correlation-Id` when it is 1 to 128 visible ASCII characters, \
                         otherwise a new one: quote it when reporting a problem",
                        true,
                    ),
                );
            }
        }
    }
}

const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,255}$";
const CORRELATION_ID_PATTERN: &str = "^[!-~]{1,128}$";
const ORDER_LOCATION_PATTERN: &str = "^/api/orders/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";

/// The public API. Routes in the legacy route table go to the legacy backend before any of the
/// gateway's own routes is considered.
pub fn router(upstreams: Upstreams, legacy: Option<Legacy>) -> Router {
    let routes = served().with_state(Arc::new(upstreams));
    let app = finish_router(routes.layer(middleware::map_response(problem_for_every_refusal)));
    match legacy {
        Some(legacy) => app.layer(middleware::from_fn_with_state(Arc::new(legacy), strangle)),
        None => app,
    }
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object)))]
async fn get_openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

async fn strangle(State(legacy): State<Arc<Legacy>>, request: Request, next: Next) -> Response {
    if !legacy.handles(request.uri().path()) {
        return next.run(request).await;
    }
    let correlation_id =
        CorrelationId::from_header_or_new(request.headers().get(CORRELATION_HEADER).and_then(|v| v.to_str().ok()));
    let mut response = legacy.proxy(request, &correlation_id).await;
    if let Ok(value) = HeaderValue::from_str(correlation_id.as_str()) {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    response
}

/// A safety net under every route: an error answer that is not a problem document (an axum
/// extractor's `text/plain` rejection, say) becomes one, with the same status and headers (a
/// 405 keeps its `Allow`).
async fn problem_for_every_refusal(response: Response) -> Response {
    let status = response.status();
    let is_problem = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v == PROBLEM_CONTENT_TYPE);
    if is_problem || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 4096).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    };
    let error = match status {
        StatusCode::BAD_REQUEST => ApiError::BadRequest(text),
        StatusCode::NOT_FOUND => ApiError::NotFound(text),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: shared::http::MAX_BODY_BYTES },
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(text),
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::Unprocessable(text),
        StatusCode::SERVICE_UNAVAILABLE => ApiError::Unavailable(text),
        _ if status.is_client_error() => ApiError::BadRequest(text),
        _ => ApiError::internal(text),
    };
    let mut problem = error.to_problem();
    problem.status = status.as_u16();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
    let body = serde_json::to_vec(&problem).expect("a problem document always serialises");
    Response::from_parts(parts, body.into())
}

/// A path segment as it must travel downstream: unreserved characters as they are, the rest
/// percent-encoded, so a client cannot smuggle `/` or `?` into the service's path.
fn segment(raw: &str) -> String {
    /// Everything but RFC 3986's unreserved characters.
    const RESERVED: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(raw, RESERVED).collect()
}

/// A path parameter, or a 400 problem naming it (axum's own rejection is `text/plain`).
fn path_param(name: &str, path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    use axum::extract::path::ErrorKind;
    match path {
        Ok(Path(value)) => Ok(value),
        Err(PathRejection::FailedToDeserializePathParams(e))
            if matches!(e.kind(), ErrorKind::InvalidUtf8InPathParam { .. }) =>
        {
            Err(ApiError::invalid(name, "must be UTF-8 once percent-decoded"))
        }
        Err(e) => Err(ApiError::BadRequest(e.body_text())),
    }
}

/// An order id in its one canonical spelling (lower-case, hyphenated), which is how every
/// service stores it and names the order's saga. The hyphenated form, in either case, is what
/// JSON Schema's `uuid` format means (2020-12 validation, 7.3.5: RFC 4122's string form) and
/// what the document's pattern says; any other spelling is refused here, before a service sees
/// it.
fn order_id(raw: &str) -> Result<shared_core::OrderId, ApiError> {
    shared_core::OrderId::parse(raw)
        .ok_or_else(|| ApiError::invalid("id", "must be an order id: a UUID as 8-4-4-4-12 hexadecimal digits"))
}

const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Whose idempotency key a forwarded order carries.
enum Key {
    /// The client's: the client may repeat the request with it, and is told of replays.
    Client(String),
    /// Made by the gateway for one client request, so that its own retries of that request
    /// are replays, never a second order.
    Gateway(String),
}

impl Key {
    /// The client's key, or a fresh one. A key that is not 1 to 255 visible ASCII characters
    /// (or is sent twice) is refused: dropping or mangling it would make a retry a second order.
    fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut values = headers.get_all(IDEMPOTENCY_HEADER).iter();
        let Some(value) = values.next() else { return Ok(Key::Gateway(uuid::Uuid::new_v4().to_string())) };
        let bytes = value.as_bytes();
        if values.next().is_some() {
            return Err(ApiError::invalid("Idempotency-Key", "send one key"));
        }
        if !(1..=255).contains(&bytes.len()) || !bytes.iter().all(u8::is_ascii_graphic) {
            return Err(ApiError::invalid("Idempotency-Key", "must be 1 to 255 visible ASCII characters"));
        }
        Ok(Key::Client(String::from_utf8_lossy(bytes).into_owned()))
    }

    fn as_str(&self) -> &str {
        match self {
            Key::Client(key) | Key::Gateway(key) => key,
        }
    }
}

/// A downstream success decoded into the public contract. An answer that does not fit the
/// contract is the service failing.
fn relay<T: DeserializeOwned + Serialize>(service: &str, reply: HttpReply) -> Response {
    match reply.json::<T>() {
        Ok(value) => (reply.status, Json(value)).into_response(),
        Err(e) => failure(service, bad_answer(e), &[]),
    }
}

const REPLAYED_HEADER: HeaderName = HeaderName::from_static("idempotent-replayed");

fn bad_answer(error: serde_json::Error) -> Failure {
    Failure::Unavailable {
        retry_after: Duration::from_secs(1),
        reason: format!("answer outside the contract: {error}"),
    }
}

/// What the client gets when `service` failed. A refusal (4xx) is passed on only when its
/// status is one the route documents (`documented`) and its body a problem document: anything
/// else (API Gateway's own `{"message":"Forbidden"}`, an undocumented status) is the service
/// failing, not the client.
fn failure(service: &str, failure: Failure, documented: &[StatusCode]) -> Response {
    let (retry_after, reason) = match failure {
        Failure::Answered { status, body } if documented.contains(&status) => {
            match serde_json::from_slice::<Problem>(&body) {
                Ok(problem) => {
                    let content_type = HeaderValue::from_static(PROBLEM_CONTENT_TYPE);
                    return (status, [(header::CONTENT_TYPE, content_type)], Json(problem)).into_response();
                }
                Err(e) => (Duration::from_secs(1), format!("answered {status} without a problem document: {e}")),
            }
        }
        Failure::Answered { status, .. } => {
            (Duration::from_secs(1), format!("answered {status}, which this route does not document"))
        }
        Failure::Unavailable { retry_after, reason } => (retry_after, reason),
    };
    tracing::warn!(service, reason, "downstream unavailable");
    let mut response =
        ApiError::Unavailable(format!("the {service} service is unavailable; try again")).into_response();
    let seconds = retry_after.as_secs().max(1).to_string();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_str(&seconds).expect("digits"));
    response
}

/// Place an order.
///
/// The order is `PENDING` until its fulfilment saga reserves the stock, charges the payment
/// method and confirms it (or cancels it); follow it with `GET /api/orders/{id}` (the `id` of
/// the answer, or its `Location`). Send an `Idempotency-Key` to retry safely: the same key with
/// the same body returns the first answer. Without one, the gateway uses a key of its own for
/// this request (so its own retries never place a second order) and names it in a `503`.
///
/// The order is the caller's: the customer is the token's `sub`. Keys are the caller's own: the
/// same key from two customers places two orders.
#[utoipa::path(post, path = "/api/orders", tag = "orders", request_body = PlaceOrder, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$",
        description = "1 to 255 visible ASCII characters, sent once. Makes the request safe to repeat: the same key and body return the first answer; another body with it is a 422")),
    responses(
        (status = 201, description = "The order, placed (or, with `Idempotent-Replayed: true`, placed earlier with this key)",
            body = Order, headers(("Location" = String, description = "`/api/orders/{id}`: where to follow the order"),
                ("Idempotent-Replayed" = String, description = "`true` when this answer repeats the first one for the request's key")),
            links(("GetOrder" = (operation_id = "get_order", parameters(("id" = "$response.body#/id")),
                description = "The order placed, and its fulfilment")))),
        (status = 400, description = "The request (body or Idempotency-Key) does not match this document; a body naming `customer_id` is refused, naming it (the customer is the token's)",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = UNAUTHORIZED, body = GatewayMessage),
        (status = 413, description = "The body is larger than 128 KiB (131072 bytes); the largest valid order is about 80 KB",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The body matches this document but breaks a rule it cannot state: a sku on two lines, or an Idempotency-Key used before with another body",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The orders service is unavailable or did not answer in time. The order may have been placed: repeat the request with the same body and the `Idempotency-Key` of this answer (yours, or the one the gateway used for you) to get that order if it was placed, or to place it once if it was not",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"),
                ("Idempotency-Key" = String, description = "The key this request was forwarded with: repeat the request with it"))),
    ))]
async fn place_order(
    State(upstreams): State<Arc<Upstreams>>,
    Extension(correlation_id): Extension<CorrelationId>,
    caller: Caller,
    headers: HeaderMap,
    order: Result<StrictJson<PlaceOrder>, ApiError>,
) -> Response {
    let order = match order {
        Ok(StrictJson(order)) => order,
        Err(refusal) => return customer_from_the_token(refusal).into_response(),
    };
    let key = match Key::from_headers(&headers) {
        Ok(key) => key,
        Err(refusal) => return refusal.into_response(),
    };
    // Always keyed, so always safely retried: a retry after a timeout is orders' replay. The
    // customer is the caller, whatever the body might have wished.
    let body = serde_json::json!({
        "customer_id": caller.customer_id,
        "payment_method": order.payment_method,
        "items": order.items,
    });
    let sent = upstreams.orders.send(Method::POST, "/orders", Some(&body), Some(key.as_str()), &correlation_id).await;
    let placed = match sent.map_err(Failure::from).and_then(|reply| match reply.json::<Order>() {
        Ok(order) => Ok((reply, order)),
        Err(e) => Err(bad_answer(e)),
    }) {
        Ok(placed) => placed,
        Err(err) => {
            let documented = [StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY];
            let mut response = failure("orders", err, &documented);
            if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                let value = HeaderValue::from_str(key.as_str()).expect("keys are visible ASCII");
                response.headers_mut().insert(IDEMPOTENCY_HEADER, value);
            }
            return response;
        }
    };
    let (reply, order) = placed;
    // The order's public address, not the service's internal one.
    let location = format!("/api/orders/{}", order.id);
    let mut response = (StatusCode::CREATED, [(header::LOCATION, location)], Json(order)).into_response();
    // A replay of the gateway's own key repeats its own retry: the client asked once.
    if matches!(key, Key::Client(_)) && reply.headers.get(REPLAYED_HEADER).is_some_and(|v| v == "true") {
        response.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

/// What API Gateway answers with 401 (its own body, before the shop sees the request).
const UNAUTHORIZED: &str = "No token, or one that is malformed, expired, not yet valid, wrongly signed, from another issuer or for another audience. API Gateway answers this itself, with `WWW-Authenticate` naming the reason";

/// A body naming `customer_id` is refused with a reason that says where the customer comes from.
fn customer_from_the_token(refusal: ApiError) -> ApiError {
    match refusal {
        ApiError::Validation(mut params) => {
            for param in params.iter_mut().filter(|p| p.name == "customer_id") {
                param.reason = "must not be sent: the customer is the subject of your token".into();
            }
            ApiError::Validation(params)
        }
        other => other,
    }
}

/// `GET /api/orders`: a page size and where the previous page ended.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// How many orders a page holds: 1 to 100, 20 when not sent.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page, as it was given.
    #[param(min_length = 1, max_length = 2048)]
    pub cursor: Option<String>,
}

/// The caller's own orders, newest first.
///
/// A page at a time: pass the answer's `next_cursor` as `cursor` for the next page; the last
/// page has none. Cursors are opaque and only valid for the caller who got them.
#[utoipa::path(get, path = "/api/orders", tag = "orders", security(("bearer" = [])), params(ListQuery),
    responses(
        (status = 200, description = "A page of the caller's orders", body = OrderList),
        (status = 400, description = "`limit` is not 1 to 100, or `cursor` is not one this API gave the caller",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = UNAUTHORIZED, body = GatewayMessage),
        (status = 503, description = "The orders service is unavailable; try again after `Retry-After` seconds",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
async fn list_orders(
    State(upstreams): State<Arc<Upstreams>>,
    Extension(correlation_id): Extension<CorrelationId>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(e) => return ApiError::BadRequest(e.body_text()).into_response(),
    };
    let mut path = format!("/orders?customer_id={}", segment(&caller.customer_id));
    if let Some(limit) = query.limit {
        path.push_str(&format!("&limit={limit}"));
    }
    if let Some(cursor) = &query.cursor {
        path.push_str(&format!("&cursor={}", segment(cursor)));
    }
    match upstreams.orders.get(&path, &correlation_id).await {
        Ok(reply) => relay::<OrderList>("orders", reply),
        Err(err) => failure("orders", err.into(), &[StatusCode::BAD_REQUEST]),
    }
}

/// Create a product, or change its name, price or low-stock threshold (admins).
///
/// Stock only changes through restocks and orders. Repeating the same request changes nothing.
#[utoipa::path(put, path = "/api/products/{sku}", tag = "catalogue", request_body = ProductSpec, security(("bearer" = [])),
    params(("sku" = String, Path, min_length = 1, max_length = 64, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        description = "The product's sku: 1 to 64 characters, not only whitespace, no control characters", example = "SKU-RED-MUG")),
    responses(
        (status = 200, description = "The product as it now is", body = Product),
        (status = 400, description = "The sku or body does not match this document, or the currency is not an ISO 4217 code",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = UNAUTHORIZED, body = GatewayMessage),
        (status = 403, description = "The caller is not in the admin group", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The inventory service is unavailable; try again after `Retry-After` seconds",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
async fn put_product(
    State(upstreams): State<Arc<Upstreams>>,
    Extension(correlation_id): Extension<CorrelationId>,
    caller: Caller,
    sku: Result<Path<String>, PathRejection>,
    spec: Result<StrictJson<ProductSpec>, ApiError>,
) -> Response {
    if let Err(refused) = caller.require_admin() {
        return refused.into_response();
    }
    let (sku, StrictJson(spec)) = match path_param("sku", sku).and_then(|sku| Ok((sku, spec?))) {
        Ok(parts) => parts,
        Err(refusal) => return refusal.into_response(),
    };
    let body = serde_json::to_value(&spec).expect("a product of plain fields serialises");
    let path = format!("/inventory/{}", segment(&sku));
    // A PUT is idempotent: retried like a read.
    match upstreams.inventory.send(Method::PUT, &path, Some(&body), None, &correlation_id).await {
        Ok(reply) => relay::<Product>("inventory", reply),
        Err(err) => failure("inventory", err.into(), &[StatusCode::BAD_REQUEST]),
    }
}

/// Add stock to a product (admins).
///
/// The `restock_id` makes the request safe to repeat: a restock with an id already applied adds
/// nothing and answers the product with `Idempotent-Replayed: true`.
#[utoipa::path(post, path = "/api/products/{sku}/restock", tag = "catalogue", request_body = Restock, security(("bearer" = [])),
    params(("sku" = String, Path, min_length = 1, max_length = 64, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        description = "The product's sku", example = "SKU-RED-MUG")),
    responses(
        (status = 200, description = "The product with its new stock", body = Product,
            headers(("Idempotent-Replayed" = String, description = "`true` when this restock was applied before"))),
        (status = 400, description = "The sku or body does not match this document", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = UNAUTHORIZED, body = GatewayMessage),
        (status = 403, description = "The caller is not in the admin group", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product: create it first", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The inventory service is unavailable; try again after `Retry-After` seconds",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
async fn restock(
    State(upstreams): State<Arc<Upstreams>>,
    Extension(correlation_id): Extension<CorrelationId>,
    caller: Caller,
    sku: Result<Path<String>, PathRejection>,
    restock: Result<StrictJson<Restock>, ApiError>,
) -> Response {
    if let Err(refused) = caller.require_admin() {
        return refused.into_response();
    }
    let (sku, StrictJson(restock)) = match path_param("sku", sku).and_then(|sku| Ok((sku, restock?))) {
        Ok(parts) => parts,
        Err(refusal) => return refusal.into_response(),
    };
    let body = serde_json::to_value(&restock).expect("a restock of plain fields serialises");
    let path = format!("/inventory/{}/restock", segment(&sku));
    // The restock id makes a repeat count once, so the call is retried as a keyed POST.
    let sent =
        upstreams.inventory.send(Method::POST, &path, Some(&body), Some(&restock.restock_id), &correlation_id).await;
    match sent {
        Ok(reply) => {
            let replayed = reply.headers.get(REPLAYED_HEADER).is_some_and(|v| v == "true");
            let mut response = relay::<Product>("inventory", reply);
            if replayed && response.status().is_success() {
                response.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            }
            response
        }
        Err(err) => failure("inventory", err.into(), &[StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND]),
    }
}

/// A product of the catalogue with its stock.
#[utoipa::path(get, path = "/api/products/{sku}", tag = "catalogue",
    params(("sku" = String, Path, description = "The product's sku", example = "SKU-RED-MUG")),
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 400, description = "The sku is not UTF-8 once percent-decoded", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The inventory service is unavailable; try again after `Retry-After` seconds",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
async fn get_product(
    State(upstreams): State<Arc<Upstreams>>,
    Extension(correlation_id): Extension<CorrelationId>,
    sku: Result<Path<String>, PathRejection>,
) -> Response {
    let sku = match path_param("sku", sku) {
        Ok(sku) => sku,
        Err(refusal) => return refusal.into_response(),
    };
    match upstreams.inventory.get(&format!("/inventory/{}", segment(&sku)), &correlation_id).await {
        Ok(reply) => relay::<Product>("inventory", reply),
        Err(err) => failure("inventory", err.into(), &[StatusCode::NOT_FOUND]),
    }
}

/// A part of the order view: present, absent (the service has none: a 404 problem document),
/// or missing because its service failed or answered outside the contract (a bare 404 is API
/// Gateway not finding a route, not the service finding no payment).
fn part<T: DeserializeOwned>(
    result: Result<HttpReply, CallError<HttpError>>,
    name: Part,
    degraded: &mut Vec<Part>,
) -> Option<T> {
    let error = match result {
        Ok(reply) => match reply.json() {
            Ok(value) => return Some(value),
            Err(e) => e.to_string(),
        },
        Err(CallError::Inner(HttpError::Status { status: StatusCode::NOT_FOUND, body, .. }))
            if serde_json::from_slice::<Problem>(&body).is_ok() =>
        {
            return None;
        }
        Err(err) => err.to_string(),
    };
    tracing::warn!(part = ?name, error, "order view without this part");
    degraded.push(name);
    None
}

/// An order with its payment, its reservation and its saga's progress.
///
/// The parts are fetched in parallel. If payments, inventory or the saga's history fail, time
/// out or are behind an open breaker, the answer is still 200: the missing parts are `null` and
/// named in `degraded`. Only the order itself is essential.
///
/// Another customer's order is a 404, exactly as an order that does not exist; an admin reads
/// any order.
#[utoipa::path(get, path = "/api/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, pattern = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$",
        description = "The order's id: a UUID as 8-4-4-4-12 hexadecimal digits, in either case; the answer spells it in lower case")),
    responses(
        (status = 200, description = "The order and what is known of its fulfilment", body = OrderView),
        (status = 400, description = "The id is not an order id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = UNAUTHORIZED, body = GatewayMessage),
        (status = 404, description = "No such order, or not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The orders service is unavailable; try again after `Retry-After` seconds",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
async fn get_order(
    State(upstreams): State<Arc<Upstreams>>,
    Extension(correlation_id): Extension<CorrelationId>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let id = match path_param("id", id).and_then(|raw| order_id(&raw)) {
        Ok(id) => id.to_string(),
        Err(refusal) => return refusal.into_response(),
    };
    // orders answers 404 for another customer's order; an admin's read is not scoped.
    let order_path = match caller.admin {
        true => format!("/orders/{id}"),
        false => format!("/orders/{id}?customer_id={}", segment(&caller.customer_id)),
    };
    let (payment_path, reservation_path) = (format!("/payments/order/{id}"), format!("/reservations/order/{id}"));
    let saga = async {
        match &upstreams.saga {
            Some(saga) => Some(tokio::time::timeout(Duration::from_secs(2), saga.progress(&id)).await),
            None => None,
        }
    };
    let (order, payment, reservation, saga) = tokio::join!(
        upstreams.orders.get(&order_path, &correlation_id),
        upstreams.payments.get(&payment_path, &correlation_id),
        upstreams.inventory.get(&reservation_path, &correlation_id),
        saga,
    );
    let order: Order = match order.map(|reply| reply.json()) {
        Ok(Ok(order)) => order,
        Ok(Err(e)) => return failure("orders", bad_answer(e), &[]),
        Err(err) => return failure("orders", err.into(), &[StatusCode::NOT_FOUND]),
    };
    if !caller.admin && order.customer_id != caller.customer_id {
        // orders scoped the read, so this is orders failing; still, never show the order.
        tracing::error!(order_id = %id, "orders answered another customer's order to a scoped read");
        return ApiError::NotFound(format!("order {id} does not exist")).into_response();
    }
    if order.id.to_string() != id {
        return failure(
            "orders",
            Failure::Unavailable {
                retry_after: Duration::from_secs(1),
                reason: format!("asked for {id}, got {}", order.id),
            },
            &[],
        );
    }
    let mut degraded = Vec::new();
    let payment = part::<Payment>(payment, Part::Payment, &mut degraded);
    let reservation = part::<Reservation>(reservation, Part::Reservation, &mut degraded);
    let saga = match saga {
        Some(Ok(Ok(progress))) => progress,
        None => None,
        Some(Ok(Err(error))) => {
            tracing::warn!(part = "saga", error, "order view without this part");
            degraded.push(Part::Saga);
            None
        }
        Some(Err(_)) => {
            tracing::warn!(part = "saga", "saga progress timed out");
            degraded.push(Part::Saga);
            None
        }
    };
    Json(OrderView { order, payment, reservation, saga, degraded }).into_response()
}
