//! Prices per model, in integer pico-dollars per token, and LiteLLM's price file format.

use std::fmt;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde_json::Value;

/// Money, in nano-dollars (1e-9 USD). Integer, so totals never drift.
pub type Nanos = u64;

/// One nano-dollar per dollar, for conversions at the edges.
pub const NANOS_PER_USD: u64 = 1_000_000_000;

/// Token counts in the four parts that are priced differently (disjoint: see
/// `towerguard_llm_core::Usage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Tokens {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Input tokens read from the provider's cache.
    pub cached_input: u64,
    /// Input tokens written to the provider's cache.
    pub cache_write: u64,
}

impl Tokens {
    /// Whether every count is below 2^31 (see [`Price::fits_64_bits`]).
    #[inline]
    pub(crate) fn fit_64_bits(&self) -> bool {
        (self.input | self.output | self.cached_input | self.cache_write) >> 31 == 0
    }

    /// Input and output tokens only.
    pub const fn new(input: u64, output: u64) -> Self {
        Self {
            input,
            output,
            cached_input: 0,
            cache_write: 0,
        }
    }
}

/// The price of one model, per token, in pico-dollars (1e-12 USD): `1.5e-07` USD per token
/// is `150_000`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Price {
    /// Per uncached input token.
    pub input: u64,
    /// Per output token.
    pub output: u64,
    /// Per cached input token (defaults to the input price when unknown).
    pub cached_input: u64,
    /// Per cache-write token (defaults to the input price when unknown).
    pub cache_write: u64,
}

impl Price {
    /// Free (local models).
    pub const FREE: Price = Price {
        input: 0,
        output: 0,
        cached_input: 0,
        cache_write: 0,
    };

    /// A price from USD per million tokens (input, output); cache parts at the input price.
    pub fn per_million_usd(input: f64, output: f64) -> Self {
        let input = usd_per_token_to_pico(input / 1e6).unwrap_or(0);
        let output = usd_per_token_to_pico(output / 1e6).unwrap_or(0);
        Self {
            input,
            output,
            cached_input: input,
            cache_write: input,
        }
    }

    /// The cost of `tokens`, in nano-dollars, rounded up (never under-billed), saturating.
    #[inline]
    pub fn cost(&self, t: Tokens) -> Nanos {
        if t.fit_64_bits() && self.fits_64_bits() {
            return self.cost_64(t);
        }
        self.cost_wide(t)
    }

    /// Whether every part is below 2^31: with token counts below 2^31 too, the cost fits in
    /// 64-bit arithmetic (true of every real price up to $2,000 per million tokens).
    #[inline]
    pub(crate) fn fits_64_bits(&self) -> bool {
        (self.input | self.output | self.cached_input | self.cache_write) >> 31 == 0
    }

    /// [`Price::cost`] in 64 bits, for a price and counts that fit (see
    /// [`Price::fits_64_bits`]): the four products and their sum stay below 2^64 - 2^33.
    #[inline(always)]
    pub(crate) fn cost_64(&self, t: Tokens) -> Nanos {
        let pico = t.input * self.input
            + t.output * self.output
            + t.cached_input * self.cached_input
            + t.cache_write * self.cache_write;
        // cannot overflow, and cheaper than `div_ceil`'s remainder
        #[allow(clippy::manual_div_ceil)]
        let nanos = (pico + 999) / 1000;
        nanos
    }

    /// [`Price::cost`] in 128 bits (each product fits; their sum saturates).
    #[cold]
    #[inline(never)]
    fn cost_wide(&self, t: Tokens) -> Nanos {
        let pico = [
            (t.input, self.input),
            (t.output, self.output),
            (t.cached_input, self.cached_input),
            (t.cache_write, self.cache_write),
        ]
        .into_iter()
        .fold(0u128, |sum, (n, p)| {
            sum.saturating_add(u128::from(n) * u128::from(p))
        });
        u64::try_from(pico.div_ceil(1000)).unwrap_or(u64::MAX)
    }
}

/// USD per token (as LiteLLM writes it) to pico-dollars per token, exactly for the decimal
/// prices in use (rounded to the nearest pico-dollar); None if negative or not finite.
fn usd_per_token_to_pico(usd: f64) -> Option<u64> {
    if !usd.is_finite() || usd < 0.0 {
        return None;
    }
    let pico = (usd * 1e12).round();
    (pico <= u64::MAX as f64).then_some(pico as u64)
}

/// What a table knows about a model besides its price.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelInfo {
    /// The price.
    pub price: Price,
    /// LiteLLM's `litellm_provider`.
    pub provider: Option<Arc<str>>,
    /// Largest prompt.
    pub max_input_tokens: Option<u64>,
    /// Largest answer: the worst case reserved when a request sets no `max_tokens`.
    pub max_output_tokens: Option<u64>,
}

/// A malformed price file, naming the model and field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceError {
    /// The model entry at fault (empty for the file as a whole).
    pub model: String,
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for PriceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.model.is_empty() {
            write!(f, "invalid price file: {}", self.reason)
        } else {
            write!(
                f,
                "invalid price for model `{}`: `{}` {}",
                self.model, self.field, self.reason
            )
        }
    }
}

impl std::error::Error for PriceError {}

/// Prices by model name. Lookups try the exact name, then the name without a
/// `provider/` prefix, so `"llama3"` finds `"ollama/llama3"` and `"openai/gpt-4o"` finds
/// `"gpt-4o"`.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    models: Vec<(Arc<str>, ModelInfo)>,
    /// Fx hashing: model names are short and not attacker-chosen keys of a growing map.
    index: FxHashMap<Arc<str>, usize>,
}

const BUILTIN: &str = include_str!("../data/prices.json");

impl PriceTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in prices of the models the seeds use (gpt-4o, gpt-4o-mini, gpt-4-turbo,
    /// deepseek-chat, grok, claude sonnet, ollama = free), from `data/prices.json`.
    pub fn builtin() -> Self {
        match Self::from_litellm_json(BUILTIN) {
            Ok(t) => t,
            Err(e) => unreachable!("the built-in price file is valid: {e}"),
        }
    }

    /// Reads LiteLLM's `model_prices_and_context_window.json` format: an object of models,
    /// each with `input_cost_per_token`, `output_cost_per_token`,
    /// `cache_read_input_token_cost`, `cache_creation_input_token_cost` (USD per token),
    /// `max_input_tokens`, `max_output_tokens` and `litellm_provider`. Keys starting with `_`
    /// and the `sample_spec` entry are skipped, as are entries without a per-token price
    /// (image, audio or per-second models). A malformed price is an error naming the model
    /// and the field.
    pub fn from_litellm_json(json: &str) -> Result<Self, PriceError> {
        let root: Value = serde_json::from_str(json).map_err(|e| PriceError {
            model: String::new(),
            field: "",
            reason: format!("not JSON: {e}"),
        })?;
        let Value::Object(entries) = root else {
            return Err(PriceError {
                model: String::new(),
                field: "",
                reason: "the top level must be an object of models".into(),
            });
        };
        let mut table = Self::new();
        for (name, entry) in entries {
            if name.starts_with('_') || name == "sample_spec" {
                continue;
            }
            let err = |field: &'static str, reason: String| PriceError {
                model: name.clone(),
                field,
                reason,
            };
            let Value::Object(fields) = &entry else {
                return Err(err("", "must be an object".into()));
            };
            let price_of = |field: &'static str| -> Result<Option<u64>, PriceError> {
                match fields.get(field) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Number(n)) => n
                        .as_f64()
                        .and_then(usd_per_token_to_pico)
                        .map(Some)
                        .ok_or_else(|| err(field, format!("must be a price >= 0, got {n}"))),
                    // some entries write prices as strings ("1e-06")
                    Some(Value::String(s)) => s
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .and_then(usd_per_token_to_pico)
                        .map(Some)
                        .ok_or_else(|| err(field, format!("must be a price >= 0, got {s:?}"))),
                    Some(other) => Err(err(field, format!("must be a number, got {other}"))),
                }
            };
            let count_of = |field: &'static str| -> Result<Option<u64>, PriceError> {
                match fields.get(field) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Number(n)) => n
                        .as_u64()
                        .or_else(|| {
                            n.as_f64()
                                .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                                .map(|f| f as u64)
                        })
                        .map(Some)
                        .ok_or_else(|| err(field, format!("must be a whole number >= 0, got {n}"))),
                    Some(other) => Err(err(field, format!("must be a number, got {other}"))),
                }
            };
            let input = price_of("input_cost_per_token")?;
            let output = price_of("output_cost_per_token")?;
            let cached = price_of("cache_read_input_token_cost")?;
            let write = price_of("cache_creation_input_token_cost")?;
            let (Some(input), Some(output)) = (input, output) else {
                continue; // not priced per token
            };
            let provider = match fields.get("litellm_provider") {
                Some(Value::String(p)) => Some(Arc::from(p.as_str())),
                None | Some(Value::Null) => None,
                Some(other) => {
                    return Err(err(
                        "litellm_provider",
                        format!("must be a string, got {other}"),
                    ));
                }
            };
            table.insert(
                &name,
                ModelInfo {
                    price: Price {
                        input,
                        output,
                        cached_input: cached.unwrap_or(input),
                        cache_write: write.unwrap_or(input),
                    },
                    provider,
                    max_input_tokens: count_of("max_input_tokens")?,
                    max_output_tokens: count_of("max_output_tokens")?.or(count_of("max_tokens")?),
                },
            );
        }
        Ok(table)
    }

    /// Adds or replaces a model.
    pub fn insert(&mut self, model: &str, info: ModelInfo) {
        let name: Arc<str> = Arc::from(model);
        let i = match self.index.get(&name) {
            Some(&i) => {
                self.models[i].1 = info;
                i
            }
            None => {
                self.models.push((name.clone(), info));
                self.models.len() - 1
            }
        };
        self.index.insert(name, i);
        // "provider/model" is also found as "model", unless that name is taken
        if let Some((_, short)) = model.rsplit_once('/') {
            self.index.entry(Arc::from(short)).or_insert(i);
        }
    }

    /// Adds or replaces a model's price.
    pub fn set_price(&mut self, model: &str, price: Price) {
        let mut info = self.get(model).cloned().unwrap_or_default();
        info.price = price;
        self.insert(model, info);
    }

    /// Merges `other` into this table (its entries win).
    pub fn extend(&mut self, other: PriceTable) {
        for (name, info) in other.models {
            self.insert(&name, info);
        }
    }

    pub(crate) fn index_of(&self, model: &str) -> Option<usize> {
        if let Some(&i) = self.index.get(model) {
            return Some(i);
        }
        let (_, short) = model.rsplit_once('/')?;
        self.index.get(short).copied()
    }

    pub(crate) fn entry(&self, i: usize) -> &(Arc<str>, ModelInfo) {
        &self.models[i]
    }

    /// What the table knows about `model`.
    pub fn get(&self, model: &str) -> Option<&ModelInfo> {
        self.index_of(model).map(|i| &self.models[i].1)
    }

    /// Number of models.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_u64_mostly_small() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..1 << 31, 0u64..1 << 40, any::<u64>()]
    }

    proptest! {
        /// The 64-bit fast path agrees with exact 128-bit arithmetic wherever it is taken,
        /// and large values saturate instead of wrapping.
        #[test]
        fn cost_is_the_exact_rounded_up_sum(
            t in [any_u64_mostly_small(), any_u64_mostly_small(), any_u64_mostly_small(), any_u64_mostly_small()],
            p in [any_u64_mostly_small(), any_u64_mostly_small(), any_u64_mostly_small(), any_u64_mostly_small()],
        ) {
            let tokens = Tokens { input: t[0], output: t[1], cached_input: t[2], cache_write: t[3] };
            let price = Price { input: p[0], output: p[1], cached_input: p[2], cache_write: p[3] };
            // as 192-bit (hi, lo) sums: no overflow anywhere
            let (mut hi, mut lo) = (0u128, 0u128);
            for i in 0..4 {
                let (sum, carry) = lo.overflowing_add(u128::from(t[i]) * u128::from(p[i]));
                lo = sum;
                hi += u128::from(carry);
            }
            let expected = if hi > 0 {
                u64::MAX
            } else {
                u64::try_from(lo.div_ceil(1000)).unwrap_or(u64::MAX)
            };
            prop_assert_eq!(price.cost(tokens), expected);
        }
    }
}
