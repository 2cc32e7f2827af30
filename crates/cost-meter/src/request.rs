//! What the meter needs to know about requests and responses.

use std::sync::Arc;

use towerguard_outcome::AttemptHook;

use crate::prices::{Nanos, Tokens};

/// The most a request can use, before it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorstCase {
    /// Input tokens (an estimate that errs high).
    pub input_tokens: u64,
    /// The output cap, if the request sets one (else the model's maximum is assumed).
    pub max_output_tokens: Option<u64>,
}

/// A request the meter can price. Implemented for `LlmRequest` with the `llm` feature;
/// implement it for your own request types.
pub trait CostRequest {
    /// The priced item (the model name).
    fn model(&self) -> &str;

    /// Who is paying, for per-client totals and budgets.
    fn client(&self) -> Option<&Arc<str>> {
        None
    }

    /// The worst case this request can cost, in tokens.
    fn worst_case(&self) -> WorstCase;

    /// Whether the request carries an [`AttemptHook`] to the layers below it (a fallback
    /// that may send it to another provider and model). Default: no, and the meter keeps
    /// the reservation in the response future without allocating.
    fn carries_attempt_hook(&self) -> bool {
        false
    }

    /// Gives the request the meter's hook (called only if
    /// [`carries_attempt_hook`](Self::carries_attempt_hook)). Whoever makes an attempt
    /// below calls [`AttemptHook::before_attempt`] first.
    fn set_attempt_hook(&mut self, hook: AttemptHook) {
        let _ = hook;
    }
}

/// A response that reports what it used. Implemented for `LlmResponse` with the `llm`
/// feature.
pub trait CostResponse {
    /// The tokens billed, or `None` if the response reports no usage: the call is then
    /// charged its reserved worst case and counted as unmetered, never as free.
    fn tokens(&self) -> Option<Tokens>;

    /// The provider that served it, if known (else the requested model's provider in the
    /// price table).
    fn provider(&self) -> Option<&str> {
        None
    }

    /// The model that answered, if known (else the requested one). It is priced, whatever
    /// was asked for.
    fn model(&self) -> Option<&str> {
        None
    }

    /// Told what the call was charged, in nano-dollars, once it is billed (a complete
    /// answer). Default: nothing is kept.
    fn record_cost(&mut self, cost: Nanos) {
        let _ = cost;
    }
}

#[cfg(feature = "llm")]
pub(crate) mod llm {
    use super::*;
    use towerguard_llm_core::{LlmRequest, LlmResponse};

    #[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
    impl CostRequest for LlmRequest {
        fn model(&self) -> &str {
            LlmRequest::model(self)
        }

        fn client(&self) -> Option<&Arc<str>> {
            self.client_key().map(|k| k.as_arc())
        }

        /// The prompt estimate doubled (so code and non-English text, which take more
        /// tokens per byte, are still covered), and `max_completion_tokens` or `max_tokens`.
        fn worst_case(&self) -> WorstCase {
            WorstCase {
                input_tokens: self.estimated_input_tokens().saturating_mul(2),
                max_output_tokens: self.params().max_output_tokens().map(u64::from),
            }
        }

        fn carries_attempt_hook(&self) -> bool {
            true
        }

        fn set_attempt_hook(&mut self, hook: AttemptHook) {
            LlmRequest::set_attempt_hook(self, Some(hook));
        }
    }

    /// `None` when both input and output tokens are 0: a provider that answered reported no
    /// usage (a real call always has input tokens). Reasoning is part of the output tokens.
    pub(crate) fn tokens_of(u: &towerguard_llm_core::Usage) -> Option<Tokens> {
        if u.input_tokens == 0 && u.output_tokens == 0 {
            return None;
        }
        Some(Tokens {
            input: u.input_tokens,
            output: u.output_tokens,
            cached_input: u.cached_input_tokens,
            cache_write: u.cache_write_tokens,
        })
    }

    /// A stream's end as the meter bills it: the provider and model its response named, and
    /// the last usage it reported (`None`: charged the reservation, counted as unmetered).
    pub(crate) struct StreamBill {
        pub(crate) provider: Arc<str>,
        pub(crate) model: Arc<str>,
        pub(crate) usage: Option<towerguard_llm_core::Usage>,
    }

    impl CostResponse for StreamBill {
        fn tokens(&self) -> Option<Tokens> {
            self.usage.as_ref().and_then(tokens_of)
        }

        fn provider(&self) -> Option<&str> {
            Some(&self.provider)
        }

        fn model(&self) -> Option<&str> {
            Some(&self.model)
        }
    }

    #[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
    impl CostResponse for LlmResponse {
        /// `None` when both input and output tokens are 0: a provider that answered
        /// reported no usage (a real call always has input tokens).
        fn tokens(&self) -> Option<Tokens> {
            tokens_of(&self.usage)
        }

        fn provider(&self) -> Option<&str> {
            Some(LlmResponse::provider(self))
        }

        fn model(&self) -> Option<&str> {
            Some(LlmResponse::model(self))
        }

        /// Kept in [`LlmResponse::cost_nanos`].
        fn record_cost(&mut self, cost: Nanos) {
            self.cost_nanos = Some(cost);
        }
    }
}
