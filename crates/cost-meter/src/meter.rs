//! What the meter needs to know about requests and responses.

use std::sync::Arc;

use crate::prices::Tokens;

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
}

/// A response that reports what it used. Implemented for `LlmResponse` with the `llm`
/// feature.
pub trait CostResponse {
    /// The tokens billed.
    fn tokens(&self) -> Tokens;

    /// The provider that served it, if known.
    fn provider(&self) -> Option<&str> {
        None
    }

    /// The model that answered, if known (priced instead of the requested one when it
    /// differs, e.g. after a fallback).
    fn model(&self) -> Option<&str> {
        None
    }
}

#[cfg(feature = "llm")]
mod llm {
    use super::*;
    use towerguard_llm_core::{LlmRequest, LlmResponse};

    impl CostRequest for LlmRequest {
        fn model(&self) -> &str {
            LlmRequest::model(self)
        }

        fn client(&self) -> Option<&Arc<str>> {
            self.client_key().map(|k| k.as_arc())
        }

        /// The prompt estimate doubled (so code and non-English text, which take more
        /// tokens per byte, are still covered), and `max_tokens`.
        fn worst_case(&self) -> WorstCase {
            WorstCase {
                input_tokens: self.estimated_input_tokens().saturating_mul(2),
                max_output_tokens: self.params().max_tokens.map(u64::from),
            }
        }
    }

    impl CostResponse for LlmResponse {
        fn tokens(&self) -> Tokens {
            let u = &self.usage;
            Tokens {
                input: u.input_tokens,
                output: u.output_tokens,
                cached_input: u.cached_input_tokens,
                cache_write: u.cache_write_tokens,
            }
        }

        fn provider(&self) -> Option<&str> {
            Some(LlmResponse::provider(self))
        }

        fn model(&self) -> Option<&str> {
            Some(LlmResponse::model(self))
        }
    }
}
