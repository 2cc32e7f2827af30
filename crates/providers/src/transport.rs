//! The HTTP plumbing every provider shares: a pooled hyper client over rustls, timeouts, a
//! capped body, a `User-Agent`, and the translation of every failure into an `LlmError`
//! with the request's own keys scrubbed from its detail.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_core::Stream;
use http::{HeaderMap, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Builder, Client};
use hyper_util::rt::TokioExecutor;
use towerguard_llm_core::{
    Chunk, ChunkStream, ErrorKind, LlmError, LlmResponse, classify_http_error_at,
};

use crate::key::Secrets;
use crate::limits::{ConfigError, Limits};
use crate::ratelimit::RateLimitInfo;
use crate::sse::{Decode, SseChunks, StreamParts};

/// The `User-Agent` sent on every request: `towerguard/<version of this crate>`.
pub(crate) const USER_AGENT: &str = concat!("towerguard/", env!("CARGO_PKG_VERSION"));

type HyperClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A pooled HTTPS (or plain HTTP, for local servers) client with the provider's limits.
pub(crate) struct Transport {
    client: HyperClient,
    limits: Limits,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("limits", &self.limits)
            .finish()
    }
}

/// A successful HTTP exchange: status, headers, body.
pub(crate) struct Answer {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// The hyper-util client's configuration.
///
/// `retry_canceled_requests(false)`: by default hyper-util silently sends a request again on
/// another connection when the pooled connection it picked turns out closed before the
/// request was written. That is a retry loop the retry layer neither sees nor counts, under
/// its budget and attempt count; the anchors' most reported router bug is retries that
/// multiply. With it off such a request fails as [`ErrorKind::Connection`], which the retry
/// layer retries (or not) by its own policy, so it is the only retry loop.
fn client_builder() -> Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder.retry_canceled_requests(false);
    builder
}

impl Transport {
    pub(crate) fn new(limits: Limits) -> Result<Self, ConfigError> {
        limits.check()?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(limits.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = client_builder().build(https);
        Ok(Self { client, limits })
    }

    /// Sends `req` (with our `User-Agent` unless it has one) and reads the whole answer. A
    /// non-success status becomes the classified `LlmError`; so do connection failures,
    /// timeouts, oversized and cut-off bodies. Every detail built here has `secrets` replaced
    /// before llm-core redacts and cuts it. A 429 without an explicit Retry-After takes its
    /// hint from the rate-limit headers ([`RateLimitInfo::retry_hint`]).
    pub(crate) async fn send(
        &self,
        provider: &Arc<str>,
        mut req: Request<Full<Bytes>>,
        secrets: Secrets<'_>,
    ) -> Result<Answer, LlmError> {
        req.headers_mut()
            .entry(http::header::USER_AGENT)
            .or_insert(HeaderValue::from_static(USER_AGENT));
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| transport_error(&e, secrets))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, self.limits.max_response_bytes)
                .collect()
                .await
                .map_err(|e| body_error(&*e, self.limits.max_response_bytes, secrets))?
                .to_bytes();
            Ok::<_, LlmError>((parts.status, parts.headers, body))
        };
        let (status, headers, body) =
            match tokio::time::timeout(self.limits.request_timeout, exchange).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => return Err(e.with_provider(provider.clone())),
                Err(_) => {
                    return Err(LlmError::new(ErrorKind::Timeout)
                        .with_provider(provider.clone())
                        .with_detail(format!(
                            "no complete answer within {:?}",
                            self.limits.request_timeout
                        )));
                }
            };
        if !status.is_success() {
            return Err(status_error(provider, status, &headers, &body, secrets));
        }
        Ok(Answer { headers, body })
    }
}

/// The classified error of a failed status: the body scrubbed of the request's keys, the
/// Retry-After hint (from the rate-limit headers for a 429 without one), the rate-limit info.
fn status_error(
    provider: &Arc<str>,
    status: http::StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    secrets: Secrets<'_>,
) -> LlmError {
    let now = SystemTime::now();
    // The body may echo our key: replaced before classification builds the detail.
    let body = secrets.scrub_bytes(body);
    let mut err = classify_http_error_at(status.as_u16(), headers, &body, now)
        .with_provider(provider.clone());
    if let Some(info) = RateLimitInfo::from_headers(headers, now) {
        if status.as_u16() == 429 && err.retry_after().is_none() {
            err.set_retry_after(info.retry_hint());
        }
        err.extensions_mut().insert(info);
    }
    tracing::debug!(
        provider = &**provider,
        status = status.as_u16(),
        kind = err.kind().as_str(),
        "provider answered with an error"
    );
    err
}

fn transport_error(e: &hyper_util::client::legacy::Error, secrets: Secrets<'_>) -> LlmError {
    let kind = if is_timeout(e) {
        ErrorKind::Timeout
    } else {
        ErrorKind::Connection
    };
    let what = if e.is_connect() {
        "could not connect"
    } else {
        "the connection failed"
    };
    LlmError::new(kind).with_detail(secrets.scrub(&format!("{what}: {}", chain(e))))
}

fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        if err.to_string().contains("timed out") {
            return true;
        }
        cur = err.source();
    }
    false
}

pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        out.push_str(": ");
        out.push_str(&err.to_string());
        cur = err.source();
    }
    out
}

fn body_error(
    e: &(dyn std::error::Error + Send + Sync + 'static),
    max: usize,
    secrets: Secrets<'_>,
) -> LlmError {
    if e.is::<http_body_util::LengthLimitError>() {
        LlmError::new(ErrorKind::Server)
            .with_should_retry(false)
            .with_detail(format!("response body larger than {max} bytes"))
    } else {
        LlmError::new(ErrorKind::Connection)
            .with_detail(secrets.scrub(&format!("the response body was cut off: {}", chain(e))))
    }
}

/// The future type of every provider service.
pub(crate) type BoxFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<LlmResponse, LlmError>> + Send>>;

/// Implements `Service<LlmRequest>` for a provider type holding `inner: Arc<Inner>` whose
/// `Inner` has `async fn complete(&self, LlmRequest) -> Result<LlmResponse, LlmError>`: always
/// ready (the pool opens connections as needed), one boxed future per call.
macro_rules! provider_service {
    ($provider:ty) => {
        impl tower_service::Service<towerguard_llm_core::LlmRequest> for $provider {
            type Response = towerguard_llm_core::LlmResponse;
            type Error = towerguard_llm_core::LlmError;
            type Future = $crate::transport::BoxFuture;

            fn poll_ready(
                &mut self,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), towerguard_llm_core::LlmError>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn call(&mut self, req: towerguard_llm_core::LlmRequest) -> Self::Future {
                let inner = self.inner.clone();
                Box::pin(async move { inner.complete(req).await })
            }
        }
    };
}

pub(crate) use provider_service;

/// Parses a provider's success body: `(body, provider, model asked for)`.
pub(crate) type Parse = fn(&[u8], &Arc<str>, &Arc<str>) -> Result<LlmResponse, LlmError>;

/// What a provider sends: where, its own headers (the sensitive ones are the request's
/// secrets), the extra headers (the provider's configured ones, then the request's: see
/// [`forwardable`]), the JSON body, and the model asked for.
pub(crate) struct Post<'a> {
    pub(crate) provider: &'a Arc<str>,
    pub(crate) url: &'a Uri,
    pub(crate) headers: &'a [(&'static str, HeaderValue)],
    pub(crate) extra: [&'a HeaderMap; 2],
    pub(crate) body: Result<Vec<u8>, LlmError>,
    pub(crate) asked: &'a Arc<str>,
}

impl Post<'_> {
    fn request(self, accept: &'static str) -> Result<Request<Full<Bytes>>, LlmError> {
        let named = |e: LlmError| e.with_provider(self.provider.clone());
        let mut http = Request::builder()
            .method(http::Method::POST)
            .uri(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, accept);
        for (name, value) in self.headers {
            http = http.header(*name, value.clone());
        }
        for (name, value) in self.extra.into_iter().flatten() {
            if forwardable(name) {
                http = http.header(name, value.clone());
            }
        }
        let secrets = Secrets::of(self.headers);
        http.body(Full::new(Bytes::from(self.body.map_err(named)?)))
            .map_err(|e| {
                named(
                    LlmError::new(ErrorKind::InvalidRequest)
                        .with_detail(secrets.scrub(&e.to_string())),
                )
            })
    }
}

impl Transport {
    /// POSTs the JSON body, parses the answer with `parse`, and puts the rate-limit hints in
    /// the response's extensions. Every error names the provider.
    ///
    /// The values of the headers marked sensitive (see [`secret_header`]) are the request's
    /// secrets: their exact text is replaced in every error detail ([`Secrets`]).
    pub(crate) async fn post_json(
        &self,
        post: Post<'_>,
        parse: Parse,
    ) -> Result<LlmResponse, LlmError> {
        let (provider, asked) = (post.provider, post.asked);
        let secrets = Secrets::of(post.headers);
        let named = |e: LlmError| e.with_provider(provider.clone());
        let http = post.request("application/json")?;
        let answer = self.send(provider, http, secrets).await?;
        let mut resp = match parse(&answer.body, provider, asked) {
            Ok(resp) => resp,
            Err(e) => {
                // A parser's message may quote the body: if the body holds a key, the error
                // is made again from the scrubbed body (the error path only).
                let e = match secrets.scrub_bytes(&answer.body) {
                    std::borrow::Cow::Borrowed(_) => e,
                    std::borrow::Cow::Owned(clean) => match parse(&clean, provider, asked) {
                        Err(e) => e,
                        Ok(_) => malformed("the answer quoted the request's key"),
                    },
                };
                return Err(named(e));
            }
        };
        if let Some(info) = RateLimitInfo::from_headers(&answer.headers, SystemTime::now()) {
            resp.extensions.insert(info);
        }
        Ok(resp)
    }

    /// POSTs the JSON body of a `stream: true` request (`Accept: text/event-stream`) and
    /// answers once the first chunk has arrived (the commit point, see
    /// [`towerguard_llm_core::stream`]), with a streamed response whose model is the one the
    /// stream names (else the one asked) and whose extensions hold the rate-limit hints.
    ///
    /// Until the first chunk, every failure is this call's error: a failed status (its body
    /// read and classified as [`send`](Self::send) does), a connection failure, an error event
    /// or a malformed event first, the stream ending, or no first chunk within
    /// [`Limits::first_chunk_timeout`]. After it, failures are the stream's error items
    /// ([`SseChunks`]).
    pub(crate) async fn post_stream<D: Decode>(
        &self,
        post: Post<'_>,
    ) -> Result<LlmResponse, LlmError> {
        let (provider, asked) = (post.provider, post.asked);
        let owned: Vec<(&'static str, HeaderValue)> = post
            .headers
            .iter()
            .filter(|(_, v)| v.is_sensitive())
            .cloned()
            .collect();
        let mut http = post.request("text/event-stream")?;
        http.headers_mut()
            .entry(http::header::USER_AGENT)
            .or_insert(HeaderValue::from_static(USER_AGENT));
        let limits = self.limits;
        let open = async {
            let secrets = Secrets::of(&owned);
            let resp = self
                .client
                .request(http)
                .await
                .map_err(|e| transport_error(&e, secrets).with_provider(provider.clone()))?;
            let (parts, body) = resp.into_parts();
            if !parts.status.is_success() {
                let body = Limited::new(body, limits.max_response_bytes)
                    .collect()
                    .await
                    .map_err(|e| {
                        body_error(&*e, limits.max_response_bytes, secrets)
                            .with_provider(provider.clone())
                    })?
                    .to_bytes();
                return Err(status_error(
                    provider,
                    parts.status,
                    &parts.headers,
                    &body,
                    secrets,
                ));
            }
            let mut chunks = SseChunks::<D>::new(
                body,
                StreamParts {
                    provider: provider.clone(),
                    idle_timeout: limits.idle_timeout,
                    max_event_bytes: limits.max_event_bytes,
                    secrets: owned.clone(),
                },
            );
            match std::future::poll_fn(|cx| std::pin::Pin::new(&mut chunks).poll_next(cx)).await {
                Some(Ok(first)) => Ok((parts.headers, first, chunks)),
                Some(Err(e)) => Err(e),
                None => Err(LlmError::new(ErrorKind::Server)
                    .with_provider(provider.clone())
                    .with_detail("the stream ended before its first chunk")),
            }
        };
        let (headers, first, mut chunks) =
            match tokio::time::timeout(limits.first_chunk_timeout, open).await {
                Ok(Ok(opened)) => opened,
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(LlmError::new(ErrorKind::Timeout)
                        .with_provider(provider.clone())
                        .with_detail(format!(
                            "no first stream chunk within {:?}",
                            limits.first_chunk_timeout
                        )));
                }
            };
        let (id, model) = match &first {
            Chunk::Start { id, model } => (
                id.clone(),
                model
                    .as_deref()
                    .filter(|m| !m.is_empty())
                    .map(Arc::<str>::from),
            ),
            _ => (None, None),
        };
        chunks.unread(first);
        let mut resp = LlmResponse::streaming(
            ChunkStream::new(chunks),
            model.unwrap_or_else(|| asked.clone()),
            provider.clone(),
        );
        resp.id = id;
        if let Some(info) = RateLimitInfo::from_headers(&headers, SystemTime::now()) {
            resp.extensions.insert(info);
        }
        Ok(resp)
    }
}

/// A malformed success body: the upstream misbehaved.
pub(crate) fn malformed(what: impl fmt::Display) -> LlmError {
    LlmError::new(ErrorKind::Server).with_detail(format!("malformed response: {what}"))
}

/// Whether an extra header may be sent: never one that would replace the client's own
/// credentials or framing (`authorization`, `x-api-key`, `host`, `content-length`,
/// `content-type`, `transfer-encoding`), whoever set it.
pub(crate) fn forwardable(name: &http::HeaderName) -> bool {
    use http::header;
    !(name == header::AUTHORIZATION
        || name == header::HOST
        || name == header::CONTENT_LENGTH
        || name == header::CONTENT_TYPE
        || name == header::TRANSFER_ENCODING
        || name.as_str() == "x-api-key")
}

/// `base` (e.g. `https://api.openai.com/v1`) joined with `path` (e.g. `/chat/completions`).
pub(crate) fn endpoint(base: &str, path: &str) -> Result<Uri, ConfigError> {
    let base = base.trim().trim_end_matches('/');
    let uri: Uri = format!("{base}{path}")
        .parse()
        .map_err(|e| ConfigError::new("base_url", format!("is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(ConfigError::new(
                "base_url",
                "must start with http:// or https://",
            ));
        }
    }
    if uri.authority().is_none() {
        return Err(ConfigError::new("base_url", "has no host"));
    }
    Ok(uri)
}

/// A header value holding a secret: marked sensitive, so hyper and `Debug` never show it, and
/// the transport replaces its text in every error detail.
pub(crate) fn secret_header(value: &str) -> Result<HeaderValue, ConfigError> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| ConfigError::new("api_key", "contains characters not allowed in a header"))?;
    v.set_sensitive(true);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_util_never_retries_on_its_own() {
        // hyper-util's `Builder` has no getter; its `Debug` shows the client configuration.
        let shown = format!("{:?}", client_builder());
        assert!(shown.contains("retry_canceled_requests: false"), "{shown}");
        let default = format!("{:?}", Client::builder(TokioExecutor::new()));
        assert!(
            default.contains("retry_canceled_requests: true"),
            "{default}"
        );
    }

    #[test]
    fn the_user_agent_names_towerguard_and_its_version() {
        assert_eq!(
            USER_AGENT,
            format!("towerguard/{}", env!("CARGO_PKG_VERSION"))
        );
        assert!(HeaderValue::from_str(USER_AGENT).is_ok());
    }
}
