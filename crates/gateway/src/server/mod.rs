//! The axum application: the router and its middleware (request ids and spans, tenants, the
//! concurrency limit, the admin guard), the server and its graceful shutdown. The handlers
//! are in [`model`] (the model routes) and [`ops`] (models, health, statistics, metrics,
//! admin).

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

mod model;
mod ops;

use model::{chat_completions, messages};
use ops::{
    admin_open, admin_refused, admin_reset, admin_unthrottle, health, metrics, models, stats,
};

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
