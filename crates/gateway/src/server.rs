//! The axum application: routes, handlers, the server and its graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use towerguard::axum::{
    AnthropicRequest, Format, OpenAiRequest, RequestRejection, as_requested, error_response,
    error_response_with_status, response,
};
use towerguard_llm_core::stream::Ended;
use towerguard_llm_core::{
    Attempts, ClientKey, ErrorKind, LlmError, LlmRequest, LlmResponse, RequestId, Tried,
};
use tracing::{Instrument, Span, field::Empty};

use crate::error::unauthorized;
use crate::metrics::Metrics;
use crate::ops::Operations;
use crate::settings::{Settings, Tenants, key_sha256};

/// The pipeline the gateway calls: one `Clone` service from `LlmRequest` to `LlmResponse`
/// (the facade's `Pipeline`).
pub type Pipeline = BoxCloneSyncService<LlmRequest, LlmResponse, LlmError>;

/// `x-request-id`: the caller's, else one the gateway made.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `x-towerguard-provider`: the provider that served the answer.
pub const PROVIDER: HeaderName = HeaderName::from_static("x-towerguard-provider");
/// `x-towerguard-attempts`: the attempts made on the provider that served (1 without retries).
pub const ATTEMPTS: HeaderName = HeaderName::from_static("x-towerguard-attempts");
/// `x-towerguard-fallbacks`: the providers tried and failed before the one that served (or,
/// on an error answer, every provider tried), each `name=error_kind`, comma-separated.
pub const FALLBACKS: HeaderName = HeaderName::from_static("x-towerguard-fallbacks");
/// `x-towerguard-cost-usd`: the cost of a complete answer in USD (when its model is priced).
pub const COST: HeaderName = HeaderName::from_static("x-towerguard-cost-usd");
/// `x-towerguard-tenant`: the tenant the request was served for.
pub const TENANT: HeaderName = HeaderName::from_static("x-towerguard-tenant");

const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
const X_ADMIN_TOKEN: HeaderName = HeaderName::from_static("x-admin-token");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The tenant of a request sent without a key when keys are not required.
pub const LOCAL_TENANT: &str = "local";

/// The gateway: an axum application over a [`Pipeline`] and its [`Operations`].
///
/// ```no_run
/// # async fn run(pipeline: towerguard_gateway::Pipeline, ops: std::sync::Arc<dyn towerguard_gateway::Operations>) -> std::io::Result<()> {
/// use towerguard_gateway::{Gateway, Settings, shutdown_signal};
///
/// let gateway = Gateway::new(pipeline, ops, Settings::default());
/// let listener = tokio::net::TcpListener::bind(gateway.settings().addr()).await?;
/// gateway.serve(listener, shutdown_signal()).await
/// # }
/// ```
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    pipeline: Pipeline,
    ops: Arc<dyn Operations>,
    settings: Settings,
    tenants: Tenants,
    metrics: Metrics,
    admin_digest: Option<[u8; 32]>,
    /// The places of the requests served at once (`concurrency_limit`).
    places: Arc<Semaphore>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway calling `pipeline`, reading and acting through `ops`, with these settings.
    pub fn new(pipeline: Pipeline, ops: Arc<dyn Operations>, settings: Settings) -> Self {
        let admin_digest = settings
            .admin_token
            .as_ref()
            .filter(|t| !t.expose().is_empty())
            .map(|t| Sha256::digest(t.expose().as_bytes()).into());
        let places = Arc::new(Semaphore::new(settings_places(&settings)));
        Self {
            inner: Arc::new(Inner {
                pipeline,
                ops,
                tenants: Tenants::new(&settings.tenants),
                settings,
                metrics: Metrics::new(),
                admin_digest,
                places,
            }),
        }
    }

    /// The same gateway (pipeline, operations, metrics) with other settings.
    pub fn with_settings(self, settings: Settings) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => Self::new(inner.pipeline, inner.ops, settings),
            Err(shared) => Self::new(shared.pipeline.clone(), shared.ops.clone(), settings),
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The axum router: every route with its limits (body size, request timeout, concurrency
    /// limit on the model routes).
    pub fn router(&self) -> Router {
        let s = &self.inner.settings;
        let model_routes = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/messages", post(messages))
            .route_layer(middleware::from_fn_with_state(
                self.inner.clone(),
                one_place_each,
            ));
        let mut router = Router::new()
            .merge(model_routes)
            .route("/v1/models", get(models))
            .route("/health", get(health))
            .route("/stats", get(stats))
            .route("/metrics", get(metrics));
        if self.inner.admin_digest.is_some() {
            let admin = Router::new()
                .route("/admin/providers/{name}/reset", post(admin_reset))
                .route("/admin/providers/{name}/open", post(admin_open))
                .route("/admin/tenants/{name}/unthrottle", post(admin_unthrottle))
                .route_layer(middleware::from_fn_with_state(
                    self.inner.clone(),
                    admin_only,
                ));
            router = router.merge(admin);
        }
        router
            .layer(
                ServiceBuilder::new()
                    .layer(middleware::from_fn_with_state(
                        self.inner.clone(),
                        outer_middleware,
                    ))
                    .layer(RequestBodyLimitLayer::new(s.max_body_bytes))
                    .layer(DefaultBodyLimit::max(s.max_body_bytes))
                    .layer(TimeoutLayer::with_status_code(
                        StatusCode::GATEWAY_TIMEOUT,
                        s.request_timeout,
                    )),
            )
            .with_state(self.inner.clone())
    }

    /// Serves on `listener` until `shutdown` resolves, then stops accepting, lets in-flight
    /// requests and streams finish, and returns; those still running after the settings'
    /// `shutdown_deadline` are dropped.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let deadline = self.inner.settings.shutdown_deadline;
        let fired = Arc::new(tokio::sync::Notify::new());
        let notify = fired.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            notify.notify_one();
        };
        // A stream is many small writes: without TCP_NODELAY each waits for the client's
        // delayed ACK (about 40 ms on Linux) behind Nagle's algorithm.
        let listener =
            axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "could not set TCP_NODELAY");
                }
            });
        let server = axum::serve(listener, self.router()).with_graceful_shutdown(signal);
        tokio::select! {
            res = server.into_future() => res,
            () = async { fired.notified().await; tokio::time::sleep(deadline).await } => {
                tracing::warn!(deadline = ?deadline, "shutdown deadline passed: dropping what is still running");
                Ok(())
            }
        }
    }
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Around every route: answers the limits' own refusals (413 from the body limit, 504 from
/// the timeout) in the caller's format, and counts requests and latency of the model routes.
async fn outer_middleware(State(inner): State<Arc<Inner>>, req: Request, next: Next) -> Response {
    let format = match req.uri().path() {
        "/v1/messages" => Some(Format::Anthropic),
        "/v1/chat/completions" => Some(Format::OpenAi),
        _ => None,
    };
    let start = Instant::now();
    let mut resp = next.run(req).await;
    let Some(format) = format else {
        return resp;
    };
    let plain = resp.headers().get(CONTENT_TYPE).is_none_or(|v| {
        !v.as_bytes().starts_with(b"application/json")
            && !v.as_bytes().starts_with(b"text/event-stream")
    });
    let status = resp.status();
    if plain && (status == StatusCode::PAYLOAD_TOO_LARGE || status == StatusCode::GATEWAY_TIMEOUT) {
        let (err, label) = if status == StatusCode::PAYLOAD_TOO_LARGE {
            let err = LlmError::new(ErrorKind::InvalidRequest).with_message(format!(
                "the request body is larger than {} bytes",
                inner.settings.max_body_bytes
            ));
            (err, "body_too_large")
        } else {
            tracing::warn!(timeout = ?inner.settings.request_timeout, "request timed out");
            (LlmError::new(ErrorKind::Timeout), "timeout")
        };
        inner.metrics.error(format, label);
        resp = error_response_with_status(format, &err, status);
    }
    inner
        .metrics
        .request(format, resp.status().as_u16(), start.elapsed());
    resp
}

/// A request body as the facade's extractors decode it (or why they refused it).
type Decoded = Result<LlmRequest, RequestRejection>;

async fn chat_completions(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Result<OpenAiRequest, RequestRejection>,
) -> Response {
    serve_model(inner, Format::OpenAi, headers, body.map(|r| r.0)).await
}

async fn messages(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Result<AnthropicRequest, RequestRejection>,
) -> Response {
    serve_model(inner, Format::Anthropic, headers, body.map(|r| r.0)).await
}

/// The caller's `x-request-id` if it is a short printable token, else a fresh one.
fn request_id(headers: &HeaderMap) -> RequestId {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(RequestId::generate, RequestId::new)
}

/// The client key sent: `Authorization: Bearer <key>`, else `x-api-key`.
fn client_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    bearer
        .or_else(|| {
            headers
                .get(X_API_KEY)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
        .filter(|k| !k.is_empty())
}

impl Inner {
    /// The tenant of a request, or `None` for a 401. The key is hashed at once and never
    /// logged.
    fn tenant(&self, headers: &HeaderMap) -> Option<ClientKey> {
        match client_key(headers) {
            Some(key) => {
                let hash = key_sha256(key);
                match self.tenants.get(&hash) {
                    Some(name) => Some(ClientKey::new(name.clone())),
                    None if self.settings.keys_required => None,
                    None => Some(ClientKey::new(format!("key-{}", &hash[..12]))),
                }
            }
            None if self.settings.keys_required => None,
            None => Some(ClientKey::new(LOCAL_TENANT)),
        }
    }

    fn is_admin(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.admin_digest else {
            return false;
        };
        let given = headers
            .get(X_ADMIN_TOKEN)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .or_else(|| client_key(headers));
        let Some(given) = given else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        digest.ct_eq(expected).into()
    }
}

async fn serve_model(
    inner: Arc<Inner>,
    format: Format,
    headers: HeaderMap,
    body: Decoded,
) -> Response {
    let id = request_id(&headers);
    let span = tracing::info_span!(
        "gen_ai.request",
        request_id = %id,
        format = format.as_str(),
        otel.kind = "server",
        tenant = Empty,
        traceparent = Empty,
        gen_ai.operation.name = "chat",
        gen_ai.request.model = Empty,
        gen_ai.response.model = Empty,
        gen_ai.provider.name = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        http.response.status_code = Empty,
    );
    if let Some(tp) = headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()) {
        span.record("traceparent", tp);
    }
    // the caller's trace context as the parent, before the span is first entered
    #[cfg(feature = "otlp")]
    crate::telemetry::set_remote_parent(&span, &headers);
    let mut resp = serve_model_in(inner, format, headers, body, id.clone(), span.clone())
        .instrument(span.clone())
        .await;
    span.record("http.response.status_code", resp.status().as_u16());
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

async fn serve_model_in(
    inner: Arc<Inner>,
    format: Format,
    headers: HeaderMap,
    body: Decoded,
    id: RequestId,
    span: Span,
) -> Response {
    let Some(tenant) = inner.tenant(&headers) else {
        tracing::info!("unknown or missing client key");
        inner.metrics.error(format, "unauthorized");
        return unauthorized(format);
    };
    span.record("tenant", tenant.as_str());
    let mut req = match body {
        Ok(r) => r,
        Err(rejection) if rejection.is_too_large() => {
            let err = LlmError::new(ErrorKind::InvalidRequest).with_message(format!(
                "the request body is larger than {} bytes",
                inner.settings.max_body_bytes
            ));
            inner.metrics.error(format, "body_too_large");
            return error_response_with_status(format, &err, StatusCode::PAYLOAD_TOO_LARGE);
        }
        Err(rejection) => return malformed(&inner, format, &tenant, rejection.error()).await,
    };
    span.record("gen_ai.request.model", req.model());
    req.set_client_key(Some(tenant.clone()));
    let req = req.with_request_id(id.clone());
    let stream = req.options().stream;
    let result = inner.pipeline.clone().oneshot(req).await;
    let mut resp = match result {
        Ok(resp) => resp,
        Err(err) => {
            tracing::warn!(kind = %err.kind(), provider = err.provider().unwrap_or(""), detail = err.detail().unwrap_or(""), "request failed");
            inner.metrics.error_kind(format, err.kind());
            let mut resp = error_response(format, &err);
            add_error_headers(resp.headers_mut(), &err);
            return resp;
        }
    };
    span.record("gen_ai.provider.name", resp.provider());
    span.record("gen_ai.response.model", resp.model());
    // the shape the client asked for, whatever the provider answered
    resp = match as_requested(resp, stream).await {
        Ok(r) => r,
        Err(err) => {
            inner.metrics.error_kind(format, err.kind());
            return error_response(format, &err);
        }
    };
    if resp.id.is_none() {
        resp.id = Some(match format {
            Format::OpenAi => format!("chatcmpl-{id}"),
            Format::Anthropic => format!("msg_{id}"),
        });
    }
    if stream {
        stream_response(&inner, format, resp, &tenant, &span)
    } else {
        complete_response(&inner, format, resp, &tenant, &span)
    }
}

/// A request that could not be decoded: 400 naming the field, counted against the tenant
/// (429 once it is throttled).
async fn malformed(inner: &Inner, format: Format, tenant: &ClientKey, err: &LlmError) -> Response {
    tracing::info!(reason = err.client_message(), "malformed request");
    match inner.ops.client_error(tenant.as_str()).await {
        Some(after) => {
            inner.metrics.error_kind(format, ErrorKind::Throttled);
            error_response(format, &LlmError::throttled(Some(after)))
        }
        None => {
            inner.metrics.error_kind(format, ErrorKind::InvalidRequest);
            error_response_with_status(format, err, StatusCode::BAD_REQUEST)
        }
    }
}

fn add_error_headers(headers: &mut HeaderMap, err: &LlmError) {
    if !err.attempts().is_empty() {
        let tried = err
            .attempts()
            .iter()
            .map(|e| format!("{}={}", e.provider().unwrap_or("unknown"), e.kind()))
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(v) = HeaderValue::from_str(&tried) {
            headers.insert(FALLBACKS, v);
        }
    } else if let Some(p) = err.provider().and_then(|p| HeaderValue::from_str(p).ok()) {
        headers.insert(PROVIDER, p);
    }
    if let Some(a) = err.extensions().get::<Attempts>() {
        headers.insert(ATTEMPTS, HeaderValue::from(a.0));
    }
}

fn add_served_headers(headers: &mut HeaderMap, resp: &LlmResponse, tenant: Option<&ClientKey>) {
    if let Ok(v) = HeaderValue::from_str(resp.provider()) {
        headers.insert(PROVIDER, v);
    }
    let attempts = resp.extensions.get::<Attempts>().map_or(1, |a| a.0);
    if let Some(tried) = resp.extensions.get::<Tried>() {
        let list = tried
            .0
            .iter()
            .map(|(name, label)| format!("{name}={label}"))
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(v) = HeaderValue::from_str(&list) {
            headers.insert(FALLBACKS, v);
        }
    }
    headers.insert(ATTEMPTS, HeaderValue::from(attempts));
    if let Some(v) = tenant.and_then(|t| HeaderValue::from_str(t.as_str()).ok()) {
        headers.insert(TENANT, v);
    }
}

/// A complete answer: the facade's JSON in the caller's format, with the gateway's headers
/// (provider, attempts, fallbacks, tenant, cost), its metrics and its span fields.
fn complete_response(
    inner: &Inner,
    format: Format,
    resp: LlmResponse,
    tenant: &ClientKey,
    span: &Span,
) -> Response {
    span.record("gen_ai.usage.input_tokens", resp.usage.total_input_tokens());
    span.record("gen_ai.usage.output_tokens", resp.usage.output_tokens);
    let cost = resp.cost_nanos.map(|n| n as f64 / 1e9);
    inner.metrics.usage(resp.provider(), &resp.usage, cost);
    let mut served = HeaderMap::new();
    add_served_headers(&mut served, &resp, Some(tenant));
    let (provider, input, output) = (
        resp.provider().to_owned(),
        resp.usage.total_input_tokens(),
        resp.usage.output_tokens,
    );
    let mut out = response(format, Ok(resp));
    if let Some(kind) = out.extensions().get::<ErrorKind>() {
        tracing::warn!(kind = %kind, "answer could not be encoded");
        inner.metrics.error_kind(format, *kind);
        return out;
    }
    tracing::info!(
        provider = provider,
        input_tokens = input,
        output_tokens = output,
        "request served"
    );
    let headers = out.headers_mut();
    headers.extend(served);
    if let Some(cost) = cost.and_then(|c| HeaderValue::from_str(&format!("{c:.6}")).ok()) {
        headers.insert(COST, cost);
    }
    out
}

/// A streamed answer: the facade's server-sent events in the caller's format, with the
/// gateway's headers; usage, failures and the client leaving are counted when it ends.
fn stream_response(
    inner: &Arc<Inner>,
    format: Format,
    mut resp: LlmResponse,
    tenant: &ClientKey,
    span: &Span,
) -> Response {
    let provider = resp.provider().to_owned();
    if let Some(chunks) = resp.stream.as_mut() {
        let inner = inner.clone();
        let span = span.clone();
        chunks.on_end(move |end| {
            let usage = end.usage.unwrap_or_default();
            span.record("gen_ai.usage.input_tokens", usage.total_input_tokens());
            span.record("gen_ai.usage.output_tokens", usage.output_tokens);
            inner.metrics.usage(&provider, &usage, None);
            let _g = span.enter();
            match end.how {
                Ended::Complete => tracing::info!(chunks = end.chunks, "stream served"),
                Ended::Failed(e) => {
                    inner.metrics.error_kind(format, e.kind());
                    tracing::warn!(kind = %e.kind(), chunks = end.chunks, "stream failed after it started");
                }
                Ended::Dropped => tracing::info!(chunks = end.chunks, "client left the stream"),
            }
        });
    }
    let mut served = HeaderMap::new();
    add_served_headers(&mut served, &resp, Some(tenant));
    let mut out = response(format, Ok(resp));
    out.headers_mut().extend(served);
    out
}

async fn models(State(inner): State<Arc<Inner>>) -> Response {
    let data: Vec<_> = inner
        .ops
        .models()
        .into_iter()
        .map(|m| json!({"id": m.id, "object": "model", "created": 0, "owned_by": m.owned_by}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn health(State(inner): State<Arc<Inner>>) -> Response {
    let providers = inner.ops.health();
    let up = providers.iter().any(|p| p.is_up());
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"status": if up { "ok" } else { "down" }, "providers": providers});
    (status, axum::Json(body)).into_response()
}

async fn stats(State(inner): State<Arc<Inner>>) -> Response {
    axum::Json(inner.ops.stats().await).into_response()
}

async fn metrics(State(inner): State<Arc<Inner>>) -> Response {
    let text = inner.metrics.render(&inner.ops.health());
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

fn admin_answer(found: bool, what: &str, name: &str) -> Response {
    if found {
        axum::Json(json!({"ok": true, what: name})).into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"ok": false, "error": format!("no {what} named {name}")})),
        )
            .into_response()
    }
}

fn admin_refused() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"ok": false, "error": "admin token required"})),
    )
        .into_response()
}

/// How many requests are served at once: `concurrency_limit`, at least 1.
fn settings_places(settings: &Settings) -> usize {
    settings.concurrency_limit.clamp(1, Semaphore::MAX_PERMITS)
}

/// The model routes' concurrency limit: a request waits for one of `concurrency_limit`
/// places and holds it until its answer ends. A streamed answer (a body of unknown length)
/// holds it until its last event is sent or the client goes away, not only until its
/// headers, so a thousand open streams cannot pass a limit of 256.
async fn one_place_each(State(inner): State<Arc<Inner>>, req: Request, next: Next) -> Response {
    let Ok(place) = inner.places.clone().acquire_owned().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response(); // never closed
    };
    let resp = next.run(req).await;
    if resp.body().size_hint().exact().is_some() {
        return resp; // in memory already: its place is free
    }
    let (parts, body) = resp.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _held = &place;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

/// The admin routes' guard: the admin token, or 401.
async fn admin_only(State(inner): State<Arc<Inner>>, req: Request, next: Next) -> Response {
    if inner.is_admin(req.headers()) {
        next.run(req).await
    } else {
        admin_refused()
    }
}

async fn admin_reset(State(inner): State<Arc<Inner>>, Path(name): Path<String>) -> Response {
    tracing::warn!(provider = %name, "admin: breaker reset");
    admin_answer(inner.ops.reset_provider(&name), "provider", &name)
}

async fn admin_open(State(inner): State<Arc<Inner>>, Path(name): Path<String>) -> Response {
    tracing::warn!(provider = %name, "admin: breaker forced open");
    admin_answer(inner.ops.force_open(&name), "provider", &name)
}

async fn admin_unthrottle(State(inner): State<Arc<Inner>>, Path(name): Path<String>) -> Response {
    tracing::warn!(tenant = %name, "admin: tenant unthrottled");
    admin_answer(inner.ops.unthrottle(&name).await, "tenant", &name)
}
