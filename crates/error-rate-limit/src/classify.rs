//! Keys, token weights, and which errors count against a client.

/// What an error says about who caused it, for the default error counting. Implemented for
/// `std::io::Error`, `Box<dyn Error + Send + Sync>` (a boxed `LlmError` inside is asked, with
/// the `llm` feature) and, with the `llm` feature, `LlmError`.
pub trait ErrorClass {
    /// The client's own fault (an invalid request): counted by default. Default: true.
    fn is_client_fault(&self) -> bool {
        true
    }

    /// An upstream failure (outage, rate limit): counted only when asked. Default: false.
    fn is_upstream_failure(&self) -> bool {
        false
    }
}

impl ErrorClass for std::io::Error {
    fn is_client_fault(&self) -> bool {
        matches!(
            self.kind(),
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
        )
    }

    fn is_upstream_failure(&self) -> bool {
        !self.is_client_fault()
    }
}

impl ErrorClass for Box<dyn std::error::Error + Send + Sync> {
    fn is_client_fault(&self) -> bool {
        #[cfg(feature = "llm")]
        if let Some(e) = self.downcast_ref::<towerguard_llm_core::LlmError>() {
            return e.is_client_fault();
        }
        !self.is::<crate::ThrottledError>()
    }

    fn is_upstream_failure(&self) -> bool {
        #[cfg(feature = "llm")]
        if let Some(e) = self.downcast_ref::<towerguard_llm_core::LlmError>() {
            return e.counts_for_breaker();
        }
        false
    }
}

#[cfg(feature = "llm")]
impl ErrorClass for towerguard_llm_core::LlmError {
    /// Invalid requests, context-length and content-policy refusals.
    fn is_client_fault(&self) -> bool {
        towerguard_llm_core::LlmError::is_client_fault(self)
    }

    /// The kinds a breaker counts: rate limits, overloads, server errors, timeouts,
    /// connection failures.
    fn is_upstream_failure(&self) -> bool {
        self.counts_for_breaker()
    }
}

/// Decides whether an error counts against the client.
pub trait Count<E> {
    /// Count it?
    fn counts(&self, error: &E) -> bool;
}

/// The default counting: the client's own faults, and upstream failures if asked
/// ([`ErrorClass`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct CountErrors {
    upstream: bool,
}

/// Counting that can be told to include upstream failures.
pub trait SetUpstream {
    /// Include upstream failures?
    fn set_upstream(&mut self, on: bool);
}

impl SetUpstream for CountErrors {
    fn set_upstream(&mut self, on: bool) {
        self.upstream = on;
    }
}

impl<E: ErrorClass> Count<E> for CountErrors {
    #[inline]
    fn counts(&self, e: &E) -> bool {
        e.is_client_fault() || (self.upstream && e.is_upstream_failure())
    }
}

/// Counting by a closure over the error.
#[derive(Debug, Clone, Copy)]
pub struct CountFn<F>(pub F);

impl<E, F: Fn(&E) -> bool> Count<E> for CountFn<F> {
    fn counts(&self, e: &E) -> bool {
        (self.0)(e)
    }
}

/// Picks a request's key and weight. [`DefaultKey`] uses [`Keyed`] on the request;
/// [`KeyFn`] a closure.
pub trait RateKey<Req> {
    /// The key (`None`: the one global key), borrowed from the request.
    fn key<'a>(&self, req: &'a Req) -> Option<&'a str>;
    /// Tokens the request weighs, for the tokens-per-minute limit.
    fn tokens(&self, req: &Req) -> u64;
}

/// What a request says about its key and weight, for [`DefaultKey`]. Implemented for
/// `LlmRequest` with the `llm` feature (its client key; prompt estimate + `max_tokens`).
pub trait Keyed {
    /// The client key, if any.
    fn rate_key(&self) -> Option<&str> {
        None
    }
    /// The request's weight in tokens. Default: 1.
    fn token_weight(&self) -> u64 {
        1
    }
}

#[cfg(feature = "llm")]
impl Keyed for towerguard_llm_core::LlmRequest {
    fn rate_key(&self) -> Option<&str> {
        self.client_key().map(|k| k.as_str())
    }

    fn token_weight(&self) -> u64 {
        self.estimated_input_tokens()
            .saturating_add(self.params().max_tokens.map_or(0, u64::from))
    }
}

/// Keys by [`Keyed`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultKey;

impl<Req: Keyed> RateKey<Req> for DefaultKey {
    #[inline]
    fn key<'a>(&self, req: &'a Req) -> Option<&'a str> {
        req.rate_key()
    }

    #[inline]
    fn tokens(&self, req: &Req) -> u64 {
        req.token_weight()
    }
}

/// Keys by a closure (weight 1 per request).
#[derive(Debug, Clone, Copy)]
pub struct KeyFn<F>(pub F);

impl<Req, F> RateKey<Req> for KeyFn<F>
where
    F: for<'a> Fn(&'a Req) -> Option<&'a str>,
{
    fn key<'a>(&self, req: &'a Req) -> Option<&'a str> {
        (self.0)(req)
    }

    fn tokens(&self, _: &Req) -> u64 {
        1
    }
}
