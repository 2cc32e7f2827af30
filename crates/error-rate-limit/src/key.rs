//! Which key a request counts against, and what it weighs.

/// The key used for requests that carry none.
pub const GLOBAL_KEY: &str = "";

/// Picks a request's key and weight. [`DefaultKey`] asks the request ([`Keyed`]);
/// [`KeyFn`] a closure.
pub trait RateKey<Req> {
    /// The key (`None`: the one [`GLOBAL_KEY`]), borrowed from the request.
    fn key<'a>(&self, req: &'a Req) -> Option<&'a str>;
    /// Tokens the request weighs, for the tokens-per-minute limit.
    fn tokens(&self, req: &Req) -> u64;
}

/// What a request says about its key and weight, for [`DefaultKey`]. Implemented for
/// `LlmRequest` with the `llm` feature (its client key; prompt estimate + `max_completion_tokens` or `max_tokens`).
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
#[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
impl Keyed for towerguard_llm_core::LlmRequest {
    fn rate_key(&self) -> Option<&str> {
        self.client_key().map(|k| k.as_str())
    }

    fn token_weight(&self) -> u64 {
        self.estimated_input_tokens()
            .saturating_add(self.params().max_output_tokens().map_or(0, u64::from))
    }
}

/// Keys by [`Keyed`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultKey;

impl<Req: Keyed> RateKey<Req> for DefaultKey {
    fn key<'a>(&self, req: &'a Req) -> Option<&'a str> {
        req.rate_key()
    }

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
