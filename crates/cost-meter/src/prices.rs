//! Prices per model, in integer pico-dollars per token, and LiteLLM's price file format.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use towerguard_outcome::ConfigError;

/// Money, in nano-dollars (1e-9 USD). Integer, so totals never drift.
pub type Nanos = u64;

/// Nano-dollars per dollar, for conversions at the edges.
pub const NANOS_PER_USD: u64 = 1_000_000_000;

/// Nano-dollars from US dollars, for configuration (amounts are integers from here on).
/// A negative or NaN amount gives 0, which every limit refuses at build time.
pub fn usd(dollars: f64) -> Nanos {
    if dollars.is_finite() && dollars > 0.0 {
        (dollars * 1e9).round().min(u64::MAX as f64) as u64
    } else {
        0
    }
}

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
    /// Per cached input token (the input price when unknown).
    pub cached_input: u64,
    /// Per cache-write token (the input price when unknown).
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

    /// A price from USD per million tokens (input, output), cache parts at the input price.
    /// A negative, NaN or infinite price is refused, naming `input` or `output`.
    pub fn per_million_usd(input: f64, output: f64) -> Result<Self, ConfigError> {
        let pico = |field: &'static str, usd: f64| {
            usd_per_token_to_pico(usd / 1e6).ok_or_else(|| {
                ConfigError::new(field, format!("must be a finite price >= 0, got {usd}"))
            })
        };
        let input = pico("input", input)?;
        Ok(Self {
            input,
            output: pico("output", output)?,
            cached_input: input,
            cache_write: input,
        })
    }

    /// The cost of `tokens`, in nano-dollars, rounded up (never under-billed), saturating.
    pub fn cost(&self, t: Tokens) -> Nanos {
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
        match u64::try_from(pico) {
            Ok(pico) => pico.div_ceil(1000),
            Err(_) => u64::try_from(pico.div_ceil(1000)).unwrap_or(u64::MAX),
        }
    }
}

/// USD per token (as LiteLLM writes it) to pico-dollars per token, rounded to the nearest
/// pico-dollar; `None` if negative or not finite.
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
    /// LiteLLM's `litellm_provider`: the provider whose per-provider budgets a request for
    /// this model reserves on before any attempt names one.
    pub provider: Option<Arc<str>>,
    /// Largest prompt.
    pub max_input_tokens: Option<u64>,
    /// Largest answer: the output reserved when a request sets no `max_tokens`.
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

/// Prices by model name.
///
/// A lookup tries the exact name, then the name without a `provider/` prefix (`"llama3"`
/// finds `"ollama/llama3"`, `"openai/gpt-4o"` finds `"gpt-4o"`), then the name without a
/// date suffix (`"gpt-4o-mini-2024-07-18"` and `"claude-3-5-sonnet-20241022"` are the dated
/// snapshots providers answer with; they find `"gpt-4o-mini"` and `"claude-3-5-sonnet"`).
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    models: Vec<(Arc<str>, ModelInfo)>,
    /// Full names, and short names (without the `provider/` prefix) of prefixed entries.
    index: HashMap<Arc<str>, usize, ahash::RandomState>,
}

const BUILTIN: &str = include_str!("../data/prices.json");

impl PriceTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in prices of the common models (gpt-4o, gpt-4o-mini, gpt-4-turbo,
    /// deepseek-chat, grok, claude, ollama = free), from `data/prices.json`.
    pub fn builtin() -> Self {
        // the file is part of the crate and checked by a test
        Self::from_litellm_json(BUILTIN).unwrap_or_default()
    }

    /// Reads LiteLLM's `model_prices_and_context_window.json` format: an object of models,
    /// each with `input_cost_per_token`, `output_cost_per_token`,
    /// `cache_read_input_token_cost`, `cache_creation_input_token_cost` (USD per token),
    /// `max_input_tokens`, `max_output_tokens` and `litellm_provider`. Keys starting with `_`
    /// and the `sample_spec` entry are skipped, as are entries without a per-token price
    /// (image, audio or per-second models). A malformed, negative or NaN price is an error
    /// naming the model and the field.
    pub fn from_litellm_json(json: &str) -> Result<Self, PriceError> {
        let file_error = |reason: String| PriceError {
            model: String::new(),
            field: "",
            reason,
        };
        let root: Value =
            serde_json::from_str(json).map_err(|e| file_error(format!("not JSON: {e}")))?;
        let Value::Object(entries) = root else {
            return Err(file_error(
                "the top level must be an object of models".into(),
            ));
        };
        let mut table = Self::new();
        for (name, entry) in &entries {
            if name.starts_with('_') || name == "sample_spec" {
                continue;
            }
            if let Some(info) = parse_entry(name, entry)? {
                table.insert(name, info);
            }
        }
        Ok(table)
    }

    /// Adds or replaces a model.
    pub fn insert(&mut self, model: &str, info: ModelInfo) {
        let i = match self.index.get(model) {
            Some(&i) if *self.models[i].0 == *model => {
                self.models[i].1 = info;
                return;
            }
            _ => {
                self.models.push((Arc::from(model), info));
                self.models.len() - 1
            }
        };
        // a full name wins over another entry's short name
        self.index.insert(Arc::from(model), i);
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

    /// What the table knows about `model` (see the lookup rules above).
    pub fn get(&self, model: &str) -> Option<&ModelInfo> {
        self.lookup(model).map(|i| &self.models[i].1)
    }

    /// The entry `model` finds, by the lookup rules above.
    pub(crate) fn lookup(&self, model: &str) -> Option<usize> {
        let exact = |m: &str| self.index.get(m).copied();
        exact(model)
            .or_else(|| exact(without_date(model)?))
            .or_else(|| {
                let (_, short) = model.rsplit_once('/')?;
                exact(short).or_else(|| exact(without_date(short)?))
            })
    }

    /// Entry `i`: its name and what is known about it.
    pub(crate) fn entry(&self, i: usize) -> Option<(&Arc<str>, &ModelInfo)> {
        self.models.get(i).map(|(name, info)| (name, info))
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

/// `name` without a trailing `-YYYY-MM-DD` or `-YYYYMMDD`, if it has one.
fn without_date(name: &str) -> Option<&str> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (head, tail) = name.rsplit_once('-')?;
    if tail.len() == 8 && digits(tail) {
        return Some(head);
    }
    // -YYYY-MM-DD: three dash-separated parts of 4, 2 and 2 digits
    let (head, month) = head.rsplit_once('-')?;
    let (head, year) = head.rsplit_once('-')?;
    (year.len() == 4 && month.len() == 2 && tail.len() == 2)
        .then_some(())
        .filter(|()| digits(year) && digits(month) && digits(tail))
        .map(|()| head)
}

/// One entry of a LiteLLM file: `None` if it is not priced per token.
fn parse_entry(name: &str, entry: &Value) -> Result<Option<ModelInfo>, PriceError> {
    let err = |field: &'static str, reason: String| PriceError {
        model: name.to_owned(),
        field,
        reason,
    };
    let Value::Object(fields) = entry else {
        return Err(err("", "must be an object".into()));
    };
    let price_of = |field: &'static str| -> Result<Option<u64>, PriceError> {
        let usd = match fields.get(field) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_f64(),
            // some entries write prices as strings ("1e-06")
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            Some(other) => return Err(err(field, format!("must be a number, got {other}"))),
        };
        usd.and_then(usd_per_token_to_pico)
            .map(Some)
            .ok_or_else(|| {
                err(
                    field,
                    format!("must be a price >= 0, got {}", fields[field]),
                )
            })
    };
    let count_of = |field: &'static str| -> Result<Option<u64>, PriceError> {
        match fields.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f <= u64::MAX as f64)
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
        return Ok(None);
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
    Ok(Some(ModelInfo {
        price: Price {
            input,
            output,
            cached_input: cached.unwrap_or(input),
            cache_write: write.unwrap_or(input),
        },
        provider,
        max_input_tokens: count_of("max_input_tokens")?,
        max_output_tokens: count_of("max_output_tokens")?.or(count_of("max_tokens")?),
    }))
}
