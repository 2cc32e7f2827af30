//! Where environment variables come from, and how they override the file.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::errors::{ConfigErrors, FieldError};
use super::secret::Secret;
use super::{Config, ProviderConfig, ProviderKind, StrategyName};

/// The environment variables a configuration reads, besides those named by
/// `server.admin_token_env` and each provider's `api_key_env`. `<PROVIDER>` stands for a
/// provider's name upper-cased with `-` as `_`.
pub const ENV_VARS: &[&str] = &[
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "DEEPSEEK_API_KEY",
    "XAI_API_KEY",
    "GROK_API_KEY",
    "OLLAMA_HOST",
    "LLM_DAILY_COST_LIMIT",
    "LLM_MONTHLY_COST_LIMIT",
    "LLM_MAX_COST_PER_REQUEST",
    "LLM_BUDGET_ALERT_THRESHOLD",
    "LLM_FALLBACK_STRATEGY",
    "<PROVIDER>_RATE_LIMIT_RPM",
    "<PROVIDER>_RATE_LIMIT_TPM",
    "<PROVIDER>_TIMEOUT",
    "<PROVIDER>_MAX_RETRIES",
    "TOWERGUARD_PORT",
];

/// Where a configuration reads environment variables: [`ProcessEnv`], a closure
/// `Fn(&str) -> Option<String>`, or a map (tests never need to touch the process's own). An
/// empty value counts as unset.
pub trait Env {
    /// The variable's value, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Env for &HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Env for &BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// A set, non-empty value.
fn get(env: &dyn Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// `<NAME>` of a provider's variables: its name upper-cased, `-` and `.` as `_`.
pub(crate) fn env_prefix(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '-' | '.' | ' ' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

/// The variables that may hold a provider's key, in the order tried, and whether a key is
/// required.
pub(crate) fn key_vars(name: &str, p: &ProviderConfig) -> (Vec<String>, bool) {
    if let Some(var) = &p.api_key_env {
        return (vec![var.clone()], p.kind != ProviderKind::Simulated);
    }
    match p.kind {
        ProviderKind::Openai => (vec!["OPENAI_API_KEY".into()], true),
        ProviderKind::Anthropic => (vec!["ANTHROPIC_API_KEY".into()], true),
        ProviderKind::Simulated => (Vec::new(), false),
        ProviderKind::OpenaiCompatible => match name {
            "xai" | "grok" => (vec!["XAI_API_KEY".into(), "GROK_API_KEY".into()], true),
            "ollama" => (Vec::new(), false),
            "deepseek" | "groq" | "mistral" => {
                (vec![format!("{}_API_KEY", env_prefix(name))], true)
            }
            other => (vec![format!("{}_API_KEY", env_prefix(other))], false),
        },
    }
}

/// `OLLAMA_HOST` as a base URL (`localhost:11434` -> `http://localhost:11434/v1`).
pub(crate) fn ollama_base_url(host: &str) -> String {
    let host = if host.starts_with("http://") || host.starts_with("https://") {
        host.to_owned()
    } else {
        format!("http://{host}")
    };
    let host = host.trim_end_matches('/');
    if host.ends_with("/v1") {
        host.to_owned()
    } else {
        format!("{host}/v1")
    }
}

/// US dollars: `12.5` or `$12.5`.
fn parse_usd(v: &str) -> Result<f64, String> {
    v.trim_start_matches('$')
        .trim()
        .parse::<f64>()
        .map_err(|_| format!("`{v}` is not an amount of US dollars"))
}

/// A share: `0.8` or `80%`.
fn parse_share(v: &str) -> Result<f64, String> {
    match v.strip_suffix('%') {
        Some(pct) => pct
            .trim()
            .parse::<f64>()
            .map(|p| p / 100.0)
            .map_err(|_| format!("`{v}` is not a percentage")),
        None => v
            .parse::<f64>()
            .map_err(|_| format!("`{v}` is not a share such as 0.8 or 80%")),
    }
}

/// A duration: `"30s"`, `"1m 30s"`, or a number of seconds.
pub(crate) fn parse_duration(v: &str) -> Result<Duration, String> {
    if let Ok(secs) = v.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("`{v}` is not a duration of at least 0 seconds"));
    }
    humantime::parse_duration(v).map_err(|e| format!("`{v}` is not a duration ({e})"))
}

fn parse_int<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse::<T>()
        .map_err(|_| format!("`{v}` is not a whole number in range"))
}

impl Config {
    /// Applies the environment's overrides and reads the keys and the admin token; a bad
    /// value is an error naming the variable and the field.
    pub(crate) fn apply_env(&mut self, env: &dyn Env, errors: &mut ConfigErrors) {
        let sources = &mut self.from_env;
        let mut set =
            |var: &str, field: &str, apply: &mut dyn FnMut(&str) -> Result<(), String>| {
                if let Some(v) = get(env, var) {
                    sources.insert(field.to_owned(), var.to_owned());
                    if let Err(reason) = apply(&v) {
                        errors.push(FieldError::new(field, reason).from_env(var));
                    }
                }
            };
        let b = &mut self.budgets;
        set("LLM_DAILY_COST_LIMIT", "budgets.daily_usd", &mut |v| {
            b.daily_usd = Some(parse_usd(v)?);
            Ok(())
        });
        set("LLM_MONTHLY_COST_LIMIT", "budgets.monthly_usd", &mut |v| {
            b.monthly_usd = Some(parse_usd(v)?);
            Ok(())
        });
        set(
            "LLM_MAX_COST_PER_REQUEST",
            "budgets.max_per_request_usd",
            &mut |v| {
                b.max_per_request_usd = Some(parse_usd(v)?);
                Ok(())
            },
        );
        set(
            "LLM_BUDGET_ALERT_THRESHOLD",
            "budgets.alert_threshold",
            &mut |v| {
                b.alert_threshold = Some(parse_share(v)?);
                Ok(())
            },
        );
        let fallback = &mut self.fallback;
        set("LLM_FALLBACK_STRATEGY", "fallback.strategy", &mut |v| {
            fallback.strategy = StrategyName::parse(v).ok_or_else(|| {
                format!("`{v}` is not a strategy: priority, cheapest, round-robin or fail-fast")
            })?;
            Ok(())
        });
        let server = &mut self.server;
        set("TOWERGUARD_PORT", "server.port", &mut |v| {
            server.port = parse_int(v)?;
            Ok(())
        });
        for (name, p) in self.providers.0.iter_mut() {
            let pre = env_prefix(name);
            let at = |f: &str| format!("providers.{name}.{f}");
            set(
                &format!("{pre}_RATE_LIMIT_RPM"),
                &at("rate_limit.rpm"),
                &mut |v| {
                    p.rate_limit.rpm = Some(parse_int(v)?);
                    Ok(())
                },
            );
            set(
                &format!("{pre}_RATE_LIMIT_TPM"),
                &at("rate_limit.tpm"),
                &mut |v| {
                    p.rate_limit.tpm = Some(parse_int(v)?);
                    Ok(())
                },
            );
            set(&format!("{pre}_TIMEOUT"), &at("timeout"), &mut |v| {
                p.timeout = parse_duration(v)?;
                Ok(())
            });
            set(
                &format!("{pre}_MAX_RETRIES"),
                &at("retry.max_retries"),
                &mut |v| {
                    p.retry.max_retries = parse_int(v)?;
                    Ok(())
                },
            );
            if name == "ollama" {
                set("OLLAMA_HOST", &at("base_url"), &mut |v| {
                    p.base_url = Some(ollama_base_url(v));
                    Ok(())
                });
            }
            let (vars, _) = key_vars(name, p);
            p.api_key = vars.iter().find_map(|v| get(env, v).and_then(Secret::new));
        }
        self.admin_token = self
            .server
            .admin_token_env
            .as_deref()
            .and_then(|var| get(env, var))
            .and_then(Secret::new);
    }
}
