//! The built-in configurations: the embedded default, and one from the environment's keys.

use super::env::{Env, key_vars};
use super::errors::ConfigErrors;
use super::{Config, ProviderConfig, ProviderKind, UnknownModels};

/// The embedded default, as TOML (a test checks it parses and validates).
pub(crate) const EMBEDDED: &str = include_str!("embedded.toml");

pub(crate) fn embedded() -> Config {
    // checked by a test; an empty configuration (which fails validation) otherwise
    Config::parse(EMBEDDED).unwrap_or_default()
}

/// The well-known providers, in the order tried, with the model each is asked for when it
/// is not the first (the first gets the request's model).
const WELL_KNOWN: &[(&str, ProviderKind, Option<&str>)] = &[
    ("openai", ProviderKind::Openai, Some("gpt-4o-mini")),
    (
        "anthropic",
        ProviderKind::Anthropic,
        Some("claude-sonnet-4-5"),
    ),
    (
        "deepseek",
        ProviderKind::OpenaiCompatible,
        Some("deepseek-chat"),
    ),
    ("xai", ProviderKind::OpenaiCompatible, Some("grok-3")),
    ("ollama", ProviderKind::OpenaiCompatible, None),
];

pub(crate) fn from_env(env: &dyn Env) -> Option<Result<Config, ConfigErrors>> {
    let mut config = Config::default();
    for &(name, kind, model) in WELL_KNOWN {
        let p = ProviderConfig::new(kind);
        let present = if name == "ollama" {
            env.var("OLLAMA_HOST").is_some_and(|v| !v.trim().is_empty())
        } else {
            key_vars(name, &p)
                .0
                .iter()
                .any(|v| env.var(v).is_some_and(|v| !v.trim().is_empty()))
        };
        if !present {
            continue;
        }
        let mut p = p;
        if !config.providers.0.is_empty() {
            p.model = model.map(str::to_owned);
        }
        if name == "ollama" {
            // local models have no price
            config.budgets.unknown_models = UnknownModels::Free;
        }
        config.providers.0.insert(name.to_owned(), p);
    }
    if config.providers.0.is_empty() {
        return None;
    }
    let mut errors = ConfigErrors::default();
    config.apply_env(env, &mut errors);
    config.validate_into(&mut errors);
    Some(errors.into_result(config))
}
