//! The operations routes: `GET /v1/models`, `/health`, `/stats`, `/metrics`, and the admin
//! routes (behind the admin guard).

use super::*;

pub(super) async fn models(State(inner): State<Arc<Inner>>) -> Response {
    let data: Vec<_> = inner
        .ops
        .models()
        .into_iter()
        .map(|m| json!({"id": m.id, "object": "model", "created": 0, "owned_by": m.owned_by}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

pub(super) async fn health(State(inner): State<Arc<Inner>>) -> Response {
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

pub(super) async fn stats(State(inner): State<Arc<Inner>>) -> Response {
    axum::Json(inner.ops.stats().await).into_response()
}

pub(super) async fn metrics(State(inner): State<Arc<Inner>>) -> Response {
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

pub(super) fn admin_refused() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"ok": false, "error": "admin token required"})),
    )
        .into_response()
}

pub(super) async fn admin_reset(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
) -> Response {
    tracing::warn!(provider = %name, "admin: breaker reset");
    admin_answer(inner.ops.reset_provider(&name), "provider", &name)
}

pub(super) async fn admin_open(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
) -> Response {
    tracing::warn!(provider = %name, "admin: breaker forced open");
    admin_answer(inner.ops.force_open(&name), "provider", &name)
}

pub(super) async fn admin_unthrottle(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
) -> Response {
    tracing::warn!(tenant = %name, "admin: tenant unthrottled");
    admin_answer(inner.ops.unthrottle(&name).await, "tenant", &name)
}
