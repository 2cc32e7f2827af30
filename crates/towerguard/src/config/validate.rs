//! Every check of a configuration, each mistake reported with its field path.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use super::env::key_vars;
use super::errors::{ConfigErrors, FieldError};
use super::{Config, ProviderConfig, ProviderKind};
use crate::llm::ErrorKind;
use crate::preset::MAX_PROVIDERS;

/// The names of the well-known OpenAI-compatible providers, which need no `base_url`.
pub(crate) const KNOWN_COMPATIBLE: &[&str] =
    &["deepseek", "xai", "grok", "groq", "mistral", "ollama"];

/// The most retries per provider (as the preset allows).
const MAX_RETRIES: u32 = crate::preset::MAX_RETRIES;

struct Check<'a> {
    errors: &'a mut ConfigErrors,
    /// Fields set by the environment, and by which variable.
    sources: &'a BTreeMap<String, String>,
}

impl Check<'_> {
    fn fail(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        let field = field.into();
        let e = FieldError::new(field.as_str(), reason);
        match self.sources.get(&field) {
            Some(var) => self.errors.push(e.from_env(var.as_str())),
            None => self.errors.push(e),
        }
    }

    fn positive(&mut self, field: impl Into<String>, d: Duration) {
        if d.is_zero() {
            self.fail(field, "must be longer than zero");
        }
    }

    fn usd(&mut self, field: impl Into<String>, v: Option<f64>) {
        if let Some(v) = v
            && !(v.is_finite() && v >= 1e-9)
        {
            self.fail(
                field,
                format!("must be a positive amount of US dollars, got {v}"),
            );
        }
    }

    fn price(&mut self, field: impl Into<String>, v: Option<f64>) {
        if let Some(v) = v
            && !(v.is_finite() && v >= 0.0)
        {
            self.fail(field, format!("must be a price of at least 0, got {v}"));
        }
    }

    fn share(&mut self, field: impl Into<String>, v: Option<f64>) {
        if let Some(v) = v
            && !(v > 0.0 && v <= 1.0)
        {
            self.fail(field, format!("must be within (0, 1], got {v}"));
        }
    }

    fn at_least_one(&mut self, field: impl Into<String>, v: Option<u64>) {
        if v == Some(0) {
            self.fail(field, "must be at least 1");
        }
    }

    fn threshold(&mut self, field: impl Into<String>, v: u32) {
        if !(1..=1000).contains(&v) {
            self.fail(field, format!("must be between 1 and 1000, got {v}"));
        }
    }
}

impl Config {
    /// Every check, each failure added to `errors`.
    pub(crate) fn validate_into(&self, errors: &mut ConfigErrors) {
        let mut c = Check {
            errors,
            sources: &self.from_env,
        };
        self.check_server(&mut c);
        self.check_providers(&mut c);
        self.check_fallback(&mut c);
        self.check_budgets(&mut c);
        self.check_limits(&mut c);
        self.check_aliases(&mut c);
        self.check_prices(&mut c);
        self.check_tenants(&mut c);
    }

    fn check_server(&self, c: &mut Check<'_>) {
        let s = &self.server;
        if s.bind != "localhost" && s.bind.parse::<IpAddr>().is_err() {
            c.fail(
                "server.bind",
                format!("`{}` is not an IP address (or `localhost`)", s.bind),
            );
        }
        if s.max_body_bytes == 0 {
            c.fail("server.max_body_bytes", "must be at least 1");
        }
        c.positive("server.request_timeout", s.request_timeout);
        if s.concurrency_limit == 0 {
            c.fail("server.concurrency_limit", "must be at least 1");
        }
        if s.admin_token_env
            .as_deref()
            .is_some_and(|v| v.trim().is_empty())
        {
            c.fail(
                "server.admin_token_env",
                "is empty: name a variable, or leave it out",
            );
        }
        if let Some(url) = &s.otlp_endpoint
            && !url.starts_with("http://")
            && !url.starts_with("https://")
        {
            c.fail(
                "server.otlp_endpoint",
                format!("`{url}` is not an http:// URL (e.g. http://127.0.0.1:4318)"),
            );
        }
        if s.keys_required && self.tenants.is_empty() {
            c.fail(
                "server.keys_required",
                "is true but no [[tenants]] are configured: no caller could get in",
            );
        }
    }

    fn check_providers(&self, c: &mut Check<'_>) {
        let providers = &self.providers.0;
        if providers.is_empty() {
            c.fail("providers", "at least one provider is needed");
        }
        if providers.len() > MAX_PROVIDERS {
            c.fail(
                "providers",
                format!("at most {MAX_PROVIDERS} providers, got {}", providers.len()),
            );
        }
        for (name, p) in providers {
            check_provider(c, name, p);
        }
    }

    fn check_fallback(&self, c: &mut Check<'_>) {
        for (i, name) in self.fallback.order.iter().enumerate() {
            let field = format!("fallback.order[{i}]");
            if !self.providers.0.contains_key(name) {
                c.fail(field, format!("no provider is named `{name}`"));
            } else if self.fallback.order[..i].contains(name) {
                c.fail(field, format!("`{name}` is listed twice"));
            }
        }
    }

    fn check_budgets(&self, c: &mut Check<'_>) {
        let b = &self.budgets;
        c.usd("budgets.daily_usd", b.daily_usd);
        c.usd("budgets.monthly_usd", b.monthly_usd);
        c.usd("budgets.max_per_request_usd", b.max_per_request_usd);
        c.usd("budgets.per_tenant_daily_usd", b.per_tenant_daily_usd);
        c.share("budgets.alert_threshold", b.alert_threshold);
        if let (Some(d), Some(m)) = (b.daily_usd, b.monthly_usd)
            && d > m
        {
            c.fail(
                "budgets.daily_usd",
                format!("({d}) is above budgets.monthly_usd ({m})"),
            );
        }
    }

    fn check_limits(&self, c: &mut Check<'_>) {
        let l = &self.limits;
        c.threshold("limits.error_threshold", l.error_threshold);
        c.positive("limits.window", l.window);
        c.positive("limits.penalty", l.penalty);
        if l.max_penalty < l.penalty {
            c.fail(
                "limits.max_penalty",
                format!(
                    "({:?}) is below limits.penalty ({:?})",
                    l.max_penalty, l.penalty
                ),
            );
        }
        c.at_least_one("limits.rpm", l.rpm);
        c.at_least_one("limits.tpm", l.tpm);
    }

    fn check_aliases(&self, c: &mut Check<'_>) {
        for (public, a) in &self.aliases {
            let at = |f: &str| format!("aliases.{public}.{f}");
            if a.model.trim().is_empty() {
                c.fail(at("model"), "is empty");
            }
            match self.providers.0.get(&a.provider) {
                None => c.fail(
                    at("provider"),
                    format!("no provider is named `{}`", a.provider),
                ),
                Some(p) => {
                    let elsewhere = self.aliases.iter().find(|(other, o)| {
                        *other < public && o.model == a.model && o.provider != a.provider
                    });
                    if let Some((other, o)) = elsewhere {
                        c.fail(
                            at("provider"),
                            format!(
                                "alias `{other}` already sends `{}` to provider `{}`; a model starts at one provider",
                                a.model, o.provider
                            ),
                        );
                    }
                    if let Some(fixed) = p.model.as_deref().filter(|m| *m != a.model) {
                        c.fail(
                            at("model"),
                            format!(
                                "provider `{}` always asks for `{fixed}` (its `model`), so `{}` would never be asked",
                                a.provider, a.model
                            ),
                        );
                    }
                }
            }
        }
    }

    fn check_prices(&self, c: &mut Check<'_>) {
        for (model, p) in &self.prices {
            let at = |f: &str| format!("prices.{model}.{f}");
            c.price(at("input"), Some(p.input));
            c.price(at("output"), Some(p.output));
            c.price(at("cached_input"), p.cached_input);
            c.price(at("cache_write"), p.cache_write);
        }
    }

    fn check_tenants(&self, c: &mut Check<'_>) {
        for (i, t) in self.tenants.iter().enumerate() {
            let at = |f: &str| format!("tenants[{i}].{f}");
            if t.name.trim().is_empty() {
                c.fail(at("name"), "is empty");
            } else if self.tenants[..i].iter().any(|o| o.name == t.name) {
                c.fail(at("name"), format!("`{}` is used twice", t.name));
            }
            let hash = &t.key_sha256;
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                c.fail(
                    at("key_sha256"),
                    format!(
                        "must be 64 hex digits (the SHA-256 of the tenant's key), got {} characters",
                        hash.len()
                    ),
                );
            } else if self.tenants[..i]
                .iter()
                .any(|o| o.key_sha256.eq_ignore_ascii_case(hash))
            {
                c.fail(at("key_sha256"), "is another tenant's key");
            }
            c.usd(at("budget.daily_usd"), t.budget.daily_usd);
            if let Some(n) = t.limits.error_threshold {
                c.threshold(at("limits.error_threshold"), n);
            }
            c.at_least_one(at("limits.rpm"), t.limits.rpm);
            c.at_least_one(at("limits.tpm"), t.limits.tpm);
        }
    }
}

fn check_provider(c: &mut Check<'_>, name: &str, p: &ProviderConfig) {
    let at = |f: &str| format!("providers.{name}.{f}");
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        c.fail(
            format!("providers.{name}"),
            "a provider's name is letters, digits, `-` and `_`",
        );
    }
    let simulated = p.kind == ProviderKind::Simulated;
    match (&p.base_url, p.kind) {
        (Some(_), ProviderKind::Simulated) => {
            c.fail(at("base_url"), "a simulated provider has no URL")
        }
        (Some(url), _) if !(url.starts_with("http://") || url.starts_with("https://")) => c.fail(
            at("base_url"),
            format!("`{url}` must start with http:// or https://"),
        ),
        (None, ProviderKind::OpenaiCompatible) if !KNOWN_COMPATIBLE.contains(&name) => c.fail(
            at("base_url"),
            format!(
                "is needed for an openai-compatible provider (only {} have a default)",
                KNOWN_COMPATIBLE.join(", ")
            ),
        ),
        _ => {}
    }
    if simulated && p.api_key_env.is_some() {
        c.fail(at("api_key_env"), "a simulated provider needs no key");
    }
    let (vars, required) = key_vars(name, p);
    if required && p.api_key.is_none() {
        c.fail(
            at("api_key_env"),
            format!("the key is missing: set {}", vars.join(" or ")),
        );
    }
    if p.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
        c.fail(at("model"), "is empty");
    }
    c.positive(at("timeout"), p.timeout);
    if p.retry.max_retries > MAX_RETRIES {
        c.fail(
            at("retry.max_retries"),
            format!("must be at most {MAX_RETRIES}, got {}", p.retry.max_retries),
        );
    }
    c.positive(at("retry.backoff"), p.retry.backoff);
    if p.retry.max_backoff < p.retry.backoff {
        c.fail(
            at("retry.max_backoff"),
            format!(
                "({:?}) is below retry.backoff ({:?})",
                p.retry.max_backoff, p.retry.backoff
            ),
        );
    }
    if p.breaker.consecutive_failures == 0 {
        c.fail(at("breaker.consecutive_failures"), "must be at least 1");
    }
    c.positive(at("breaker.open_duration"), p.breaker.open_duration);
    c.share(at("breaker.failure_rate"), p.breaker.failure_rate);
    c.at_least_one(at("rate_limit.rpm"), p.rate_limit.rpm);
    c.at_least_one(at("rate_limit.tpm"), p.rate_limit.tpm);
    if let Some(f) = &p.faults {
        if !simulated {
            c.fail(at("faults"), "only a simulated provider has faults");
        }
        let mut total = f.hang_rate;
        for (kind, rate) in &f.rates {
            let field = at(&format!("faults.rates.{kind}"));
            if error_kind(kind).is_none() {
                let kinds: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
                c.fail(
                    field.clone(),
                    format!("`{kind}` is not an error kind: one of {}", kinds.join(", ")),
                );
            }
            if !(0.0..=1.0).contains(rate) {
                c.fail(field, format!("must be within 0..=1, got {rate}"));
            }
            total += rate;
        }
        if !(0.0..=1.0).contains(&f.hang_rate) {
            c.fail(
                at("faults.hang_rate"),
                format!("must be within 0..=1, got {}", f.hang_rate),
            );
        }
        if total > 1.0 + 1e-9 {
            c.fail(
                at("faults.rates"),
                format!("the rates and hang_rate add up to {total}, more than 1"),
            );
        }
        if let (Some(min), Some(max)) = (f.latency, f.latency_max)
            && max < min
        {
            c.fail(
                at("faults.latency_max"),
                format!("({max:?}) is below faults.latency ({min:?})"),
            );
        }
    }
}

/// The error kind named `name` (`rate_limited`, `server`, ...).
pub(crate) fn error_kind(name: &str) -> Option<ErrorKind> {
    ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
}
