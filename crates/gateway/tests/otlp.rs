//! The `otlp` feature: the exporter from the configuration, and the caller's `traceparent`
//! as the parent of the gateway's spans (checked through an exporter that keeps the spans).
#![cfg(feature = "otlp")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::body::Body;
use http::Request;
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tower::ServiceExt;
use towerguard::config::Config;
use towerguard_gateway::config::{gateway_from_config, settings_from_config};
use towerguard_gateway::telemetry::{
    otel_layer, otlp_tracer_provider, tracer_provider_with, traces_url,
};
use tracing_subscriber::layer::SubscriberExt;

/// Keeps every exported span.
#[derive(Debug, Clone, Default)]
struct Kept(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Kept {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.0.lock().unwrap().extend(batch);
        std::future::ready(Ok(()))
    }
}

#[test]
fn the_exporter_builds_from_the_configuration() {
    let config = Config::parse(
        r#"
        [server]
        otlp_endpoint = "http://127.0.0.1:4318"
        [providers.sim]
        kind = "simulated"
        "#,
    )
    .unwrap();
    let settings = settings_from_config(&config);
    let endpoint = settings.otlp_endpoint.as_deref().unwrap();
    assert_eq!(traces_url(endpoint), "http://127.0.0.1:4318/v1/traces");
    assert_eq!(
        traces_url("http://collector:4318/v1/traces/"),
        "http://collector:4318/v1/traces"
    );
    let provider = otlp_tracer_provider(endpoint).unwrap();
    // nothing was sent (no span ended), so nothing waits on the absent collector
    provider.shutdown().unwrap();

    assert!(
        otlp_tracer_provider("https://collector:4318").is_err(),
        "no TLS in this build"
    );

    // off by default
    assert_eq!(
        settings_from_config(&Config::embedded_default()).otlp_endpoint,
        None
    );

    let err = Config::parse(
        r#"
        [server]
        otlp_endpoint = "127.0.0.1:4318"
        [providers.sim]
        kind = "simulated"
        "#,
    )
    .unwrap()
    .validate()
    .unwrap_err();
    assert!(err.to_string().contains("server.otlp_endpoint"), "{err}");
}

#[tokio::test]
async fn the_callers_traceparent_is_the_parent_of_the_request_span() {
    let kept = Kept::default();
    let provider = tracer_provider_with(kept.clone());
    let subscriber = tracing_subscriber::registry().with(otel_layer(&provider));
    let _guard = tracing::subscriber::set_default(subscriber);

    let gateway = gateway_from_config(&Config::embedded_default()).unwrap();
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let req = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .body(Body::from(
            r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#,
        ))
        .unwrap();
    let resp = gateway.router().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    drop(resp);
    provider.force_flush().unwrap();

    let spans = kept.0.lock().unwrap().clone();
    let request = spans
        .iter()
        .find(|s| s.name == "gen_ai.request")
        .unwrap_or_else(|| panic!("no request span in {spans:#?}"));
    let trace_id = TraceId::from_hex(caller_trace).unwrap();
    assert_eq!(request.span_context.trace_id(), trace_id);
    assert_eq!(
        request.parent_span_id,
        SpanId::from_hex(caller_span).unwrap()
    );
    assert!(request.parent_span_is_remote);
    assert_eq!(request.span_kind, SpanKind::Server);

    let attempts: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "chat gpt-4o-mini")
        .collect();
    assert!(!attempts.is_empty(), "no attempt span in {spans:#?}");
    for a in attempts {
        assert_eq!(a.span_context.trace_id(), trace_id);
        assert_eq!(a.parent_span_id, request.span_context.span_id());
        assert_eq!(a.span_kind, SpanKind::Client);
        assert!(
            a.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "gen_ai.provider.name")
        );
    }
    provider.shutdown().unwrap();
}
