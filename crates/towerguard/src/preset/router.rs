//! Tenants with limits of their own: their requests go through their own limiter.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Service, ServiceExt};

use super::Pipeline;
use crate::llm::{LlmError, LlmRequest, LlmResponse};

type BoxFuture = Pin<Box<dyn Future<Output = Result<LlmResponse, LlmError>> + Send>>;

/// Sends a request whose client key names a tenant with limits of its own to that tenant's
/// limiter, every other to the default one (all over the same meter and providers).
#[derive(Clone)]
pub(crate) struct TenantRouter {
    default: Pipeline,
    tenants: Arc<HashMap<Arc<str>, Pipeline>>,
}

impl TenantRouter {
    pub(crate) fn new(default: Pipeline, tenants: HashMap<Arc<str>, Pipeline>) -> Self {
        Self {
            default,
            tenants: Arc::new(tenants),
        }
    }
}

impl Service<LlmRequest> for TenantRouter {
    type Response = LlmResponse;
    type Error = LlmError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), LlmError>> {
        self.default.poll_ready(cx)
    }

    fn call(&mut self, req: LlmRequest) -> BoxFuture {
        let own = req
            .client_key()
            .and_then(|k| self.tenants.get(k.as_str()))
            .cloned();
        match own {
            Some(svc) => Box::pin(svc.oneshot(req)),
            None => self.default.call(req),
        }
    }
}
