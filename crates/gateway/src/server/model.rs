//! The model routes: `POST /v1/chat/completions` and `POST /v1/messages`, through the
//! pipeline, answered in the caller's format with the headers saying what happened.

use super::*;

/// A request body as the facade's extractors decode it (or why they refused it).
type Decoded = Result<LlmRequest, RequestRejection>;

pub(super) async fn chat_completions(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Result<OpenAiRequest, RequestRejection>,
) -> Response {
    serve_model(inner, Format::OpenAi, headers, body.map(|r| r.0)).await
}

pub(super) async fn messages(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Result<AnthropicRequest, RequestRejection>,
) -> Response {
    serve_model(inner, Format::Anthropic, headers, body.map(|r| r.0)).await
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
