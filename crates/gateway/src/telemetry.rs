//! Export of the spans over OTLP (the `otlp` feature) and the caller's `traceparent`.
//!
//! With the feature on and `server.otlp_endpoint` set, [`otlp_tracer_provider`] builds an
//! OpenTelemetry tracer provider that sends batches of spans over OTLP/HTTP (protobuf) to
//! `{otlp_endpoint}/v1/traces`, and [`otel_layer`] is the `tracing` layer that turns the
//! gateway's spans (`gen_ai.request`, and a `gen_ai.attempt` per attempt) into OpenTelemetry
//! spans. A request's `traceparent` header (W3C trace context) becomes the parent of its
//! `gen_ai.request` span, so the gateway's spans join the caller's trace. Without the
//! feature, the header is only recorded as a field of the request span.

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{ExporterBuildError, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::registry::LookupSpan;

/// The `service.name` of the exported spans.
pub const SERVICE_NAME: &str = "towerguard";

/// The URL spans are posted to: `endpoint` itself when it already ends in `/v1/traces`,
/// else `endpoint` with `/v1/traces` appended (OTLP/HTTP's path for traces).
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// A tracer provider that exports spans in batches over OTLP/HTTP to `endpoint` (the
/// collector's base URL, e.g. `http://127.0.0.1:4318`; see [`traces_url`]). Nothing is sent
/// until spans end; an unreachable collector costs dropped batches, never requests. Call
/// [`SdkTracerProvider::shutdown`] before exiting to flush the last batch. Only `http://`
/// endpoints: this build has no TLS for the exporter, so an `https://` one is refused here
/// rather than failing every export later.
pub fn otlp_tracer_provider(endpoint: &str) -> Result<SdkTracerProvider, ExporterBuildError> {
    if !endpoint.starts_with("http://") {
        return Err(ExporterBuildError::InvalidConfiguration(format!(
            "`{endpoint}`: only http:// endpoints are supported (the exporter is built without TLS)"
        )));
    }
    let exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(traces_url(endpoint))
        .build()?;
    Ok(tracer_provider_with(exporter))
}

/// A tracer provider over any span exporter (tests use one that keeps the spans), with the
/// gateway's resource (`service.name = towerguard`) and a batch processor.
pub fn tracer_provider_with(
    exporter: impl opentelemetry_sdk::trace::SpanExporter + 'static,
) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(SERVICE_NAME).build())
        .with_batch_exporter(exporter)
        .build()
}

/// The `tracing` layer that records spans through `provider`.
pub fn otel_layer<S>(provider: &SdkTracerProvider) -> OpenTelemetryLayer<S, SdkTracer>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer(SERVICE_NAME))
}

/// Reads W3C trace-context headers from an `http::HeaderMap`.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Makes the caller's `traceparent` (and `tracestate`) the parent of `span`, which must not
/// have been entered yet. A missing or invalid header leaves `span` a root; without the
/// OpenTelemetry layer installed this does nothing.
pub(crate) fn set_remote_parent(span: &Span, headers: &HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&Headers(headers));
    // Err: no OpenTelemetry layer, or the span is disabled; nothing to join then.
    let _ = span.set_parent(cx);
}
