//! One provider's stack: `[rate limit] -> Retry -> CircuitBreaker -> attempt span -> Timeout
//! -> client`.
//!
//! The attempt span is innermost, so each attempt (the first and every retry) is a span of
//! its own, a child of whatever span the caller's future runs in (the gateway's
//! `gen_ai.request`). Its fields follow OpenTelemetry's semantic conventions for
//! generative-AI client spans: `gen_ai.operation.name` (`chat`), `gen_ai.provider.name`,
//! `gen_ai.request.model`, then `gen_ai.response.model` and `gen_ai.usage.input_tokens` /
//! `output_tokens` on an answer, `error.type` (the error kind) on a failure; `otel.name`
//! (`chat {model}`), `otel.kind` and `otel.status_code` name, kind and status the span for
//! tracing-opentelemetry. A streamed answer's attempt span ends when its response (the
//! first chunk) arrives: its usage, known only at the stream's end, is not on it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tower::util::BoxCloneSyncService;
use tower::{BoxError, Service, ServiceBuilder};
use tracing::Span;
use tracing::field::Empty;
use tracing::instrument::{Instrument, Instrumented};

use super::{Pipeline, ProviderSpec};
use crate::breaker::{CircuitBreakerHandle, CircuitBreakerLayer};
use crate::limit::ErrorRateLimitLayer;
use crate::llm::{ErrorKind, LlmError, LlmRequest, LlmResponse};
use crate::outcome::{ConfigError, Verdict};
use crate::retry::{LlmAttempts, RetryLayer};

/// The kind of a provider's last failed attempt, lock-free: 0 for none, else the kind's
/// position in [`ErrorKind::ALL`] plus one.
#[derive(Debug, Default)]
pub(crate) struct LastError(AtomicU8);

impl LastError {
    fn set(&self, kind: ErrorKind) {
        if let Some(i) = ErrorKind::ALL.iter().position(|k| *k == kind) {
            self.0.store(i as u8 + 1, Ordering::Relaxed);
        }
    }

    pub(crate) fn get(&self) -> Option<ErrorKind> {
        let i = usize::from(self.0.load(Ordering::Relaxed));
        i.checked_sub(1)
            .and_then(|i| ErrorKind::ALL.get(i).copied())
    }
}

/// The stack of `spec`, and its breaker's handle.
pub(crate) fn provider(
    spec: &ProviderSpec,
    last: Arc<LastError>,
) -> Result<(Pipeline, CircuitBreakerHandle), ConfigError> {
    let name = spec.name.clone();
    let at = format!("providers.{name}");
    let attempt: Pipeline = match spec.timeout {
        Some(limit) => {
            let provider = name.clone();
            BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .map_err(move |e: BoxError| timeout_error(e, &provider, limit))
                    .timeout(limit)
                    .service(spec.client.clone()),
            )
        }
        None => spec.client.clone(),
    };
    let attempt: Pipeline = BoxCloneSyncService::new(AttemptSpan {
        inner: attempt,
        provider: name.clone(),
    });
    let breaker = breaker_layer(spec).map_err(|e| e.under(&format!("{at}.breaker")))?;
    let breaker_handle = breaker.handle();
    let retry = RetryLayer::builder()
        .max_retries(spec.retry.max_retries)
        .backoff(spec.retry.backoff.clone())
        .max_retry_after(spec.retry.max_retry_after)
        .record_attempts(LlmAttempts)
        .build()
        .map_err(|e| e.under(&format!("{at}.retry")))?;
    let record = move |e: LlmError| {
        last.set(e.kind());
        e
    };
    let stack: Pipeline = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(retry)
            .layer(breaker)
            .map_err(record)
            .service(attempt),
    );
    if !spec.rate.is_set() {
        return Ok((stack, breaker_handle));
    }
    let mut limiter = ErrorRateLimitLayer::builder()
        .key_with(one_key)
        .classify_with(|_: &Result<LlmResponse, LlmError>| Verdict::Success);
    if let Some(rpm) = spec.rate.rpm {
        limiter = limiter.requests_per_minute(rpm);
    }
    if let Some(tpm) = spec.rate.tpm {
        limiter = limiter.tokens_per_minute(tpm);
    }
    let limiter = limiter
        .build()
        .map_err(|e| e.under(&format!("{at}.rate_limit")))?;
    let provider = name.clone();
    let limited = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .map_err(move |e: LlmError| provider_rate_error(e, &provider))
            .layer(limiter)
            .service(stack),
    );
    Ok((limited, breaker_handle))
}

/// Every request to one provider shares its rate allowance.
fn one_key(_: &LlmRequest) -> Option<&str> {
    None
}

/// The provider's breaker layer from its settings.
fn breaker_layer(spec: &ProviderSpec) -> Result<CircuitBreakerLayer, ConfigError> {
    let s = &spec.breaker;
    let mut b = CircuitBreakerLayer::builder()
        .name(spec.name.clone())
        .open_duration(s.open_duration)
        .half_open_permits(s.half_open_permits)
        .count_window(s.window);
    b = match s.consecutive_failures {
        Some(n) => b.consecutive_failures(n),
        None => b.no_consecutive_failures(),
    };
    // The window is always kept, for the recent success rate; without a failure rate of
    // its own it trips only when every call of a full window failed.
    b = match s.failure_rate {
        Some(rate) => b.failure_rate(rate).min_calls(u64::from(s.min_calls)),
        None => b.failure_rate(1.0).min_calls(u64::from(s.window)),
    };
    b.build()
}

/// tower's timeout error as an `LlmError`: an elapsed attempt is kind `Timeout`; the
/// client's own errors pass unchanged.
fn timeout_error(e: BoxError, provider: &Arc<str>, limit: Duration) -> LlmError {
    match e.downcast::<LlmError>() {
        Ok(e) => *e,
        Err(e) if e.is::<tower::timeout::error::Elapsed>() => LlmError::new(ErrorKind::Timeout)
            .with_provider(provider.clone())
            .with_detail(format!("no answer within the attempt timeout of {limit:?}")),
        Err(e) => LlmError::new(ErrorKind::Server)
            .with_provider(provider.clone())
            .with_detail(e.to_string()),
    }
}

/// A request over the provider's own rate is that provider's rate limit: the fallback moves
/// on and skips it for the wait.
fn provider_rate_error(e: LlmError, provider: &Arc<str>) -> LlmError {
    if e.kind() != ErrorKind::Throttled {
        return e;
    }
    let err = LlmError::new(ErrorKind::RateLimited)
        .with_provider(provider.clone())
        .with_detail("the provider's configured rate limit is reached");
    match e.retry_after() {
        Some(wait) => err.with_retry_after(wait),
        None => err,
    }
}

/// Runs each attempt in a `gen_ai.attempt` span (see the module docs).
#[derive(Clone)]
struct AttemptSpan {
    inner: Pipeline,
    provider: Arc<str>,
}

impl Service<LlmRequest> for AttemptSpan {
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = AttemptFuture<<Pipeline as Service<LlmRequest>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), LlmError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let span = tracing::info_span!(
            "gen_ai.attempt",
            otel.name = Empty,
            otel.kind = "client",
            otel.status_code = Empty,
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = &*self.provider,
            gen_ai.request.model = req.model(),
            gen_ai.response.model = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            error.type = Empty,
        );
        if !span.is_disabled() {
            span.record("otel.name", format!("chat {}", req.model()));
        }
        AttemptFuture {
            inner: self.inner.call(req).instrument(span),
        }
    }
}

/// An attempt's future in its span, recording the outcome on the span when it resolves.
struct AttemptFuture<F> {
    inner: Instrumented<F>,
}

impl<F> Future for AttemptFuture<F>
where
    F: Future<Output = Result<LlmResponse, LlmError>> + Unpin,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let out = std::task::ready!(Pin::new(&mut self.inner).poll(cx));
        record_outcome(self.inner.span(), &out);
        Poll::Ready(out)
    }
}

fn record_outcome(span: &Span, out: &Result<LlmResponse, LlmError>) {
    if span.is_disabled() {
        return;
    }
    match out {
        Ok(resp) => {
            span.record("gen_ai.response.model", resp.model());
            if resp.stream.is_none() {
                span.record("gen_ai.usage.input_tokens", resp.usage.total_input_tokens());
                span.record("gen_ai.usage.output_tokens", resp.usage.output_tokens);
            }
        }
        Err(e) => {
            span.record("error.type", e.kind().as_str());
            span.record("otel.status_code", "ERROR");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use tower::ServiceExt;
    use tracing::Subscriber;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt};
    use tracing_subscriber::registry::LookupSpan;

    use super::*;
    use crate::testkit::{FakeProvider, Outcome, request};

    /// A span as recorded: its name, its parent's name, its fields.
    #[derive(Debug, Clone, Default)]
    struct Recorded {
        name: &'static str,
        parent: Option<&'static str>,
        fields: BTreeMap<&'static str, String>,
    }

    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<(Id, Recorded)>>>);

    struct Fields<'a>(&'a mut BTreeMap<&'static str, String>);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name(), format!("{value:?}"));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name(), value.to_owned());
        }
    }

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
            let mut rec = Recorded {
                name: attrs.metadata().name(),
                parent: ctx.span(id).and_then(|s| s.parent()).map(|p| p.name()),
                ..Recorded::default()
            };
            attrs.record(&mut Fields(&mut rec.fields));
            self.0.lock().unwrap().push((id.clone(), rec));
        }

        fn on_record(&self, id: &Id, values: &Record<'_>, _: LayerContext<'_, S>) {
            let mut spans = self.0.lock().unwrap();
            if let Some((_, rec)) = spans.iter_mut().find(|(i, _)| i == id) {
                values.record(&mut Fields(&mut rec.fields));
            }
        }
    }

    impl Recorder {
        fn named(&self, name: &str) -> Vec<Recorded> {
            let spans = self.0.lock().unwrap();
            spans
                .iter()
                .map(|(_, r)| r.clone())
                .filter(|r| r.name == name)
                .collect()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_attempt_is_a_child_span_with_its_provider_and_outcome() {
        let recorder = Recorder::default();
        let subscriber = tracing_subscriber::registry().with(recorder.clone());
        let _guard = tracing::subscriber::set_default(subscriber);

        let fake = FakeProvider::scripted("primary", [Outcome::fail(ErrorKind::Overloaded)]);
        let spec = ProviderSpec::new("primary", fake)
            .max_retries(1)
            .timeout(Duration::from_secs(5));
        let (stack, _) = provider(&spec, Arc::new(LastError::default())).unwrap();
        let request_span = tracing::info_span!("gen_ai.request");
        let answer = stack
            .oneshot(request("gpt-4o-mini"))
            .instrument(request_span)
            .await
            .unwrap();
        assert_eq!(answer.provider(), "primary");

        let attempts = recorder.named("gen_ai.attempt");
        assert_eq!(attempts.len(), 2, "{attempts:#?}");
        for a in &attempts {
            assert_eq!(a.parent, Some("gen_ai.request"));
            assert_eq!(a.fields["gen_ai.provider.name"], "primary");
            assert_eq!(a.fields["gen_ai.request.model"], "gpt-4o-mini");
            assert_eq!(a.fields["gen_ai.operation.name"], "chat");
            assert_eq!(a.fields["otel.name"], "chat gpt-4o-mini");
        }
        let (first, second) = (&attempts[0].fields, &attempts[1].fields);
        assert_eq!(first["error.type"], "overloaded");
        assert_eq!(first["otel.status_code"], "ERROR");
        assert!(!first.contains_key("gen_ai.response.model"));
        assert!(!second.contains_key("error.type"));
        assert_eq!(second["gen_ai.response.model"], answer.model());
        assert_eq!(
            second["gen_ai.usage.output_tokens"],
            answer.usage.output_tokens.to_string()
        );
    }
}
