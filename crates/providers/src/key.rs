//! API keys that never show themselves, and where they come from.

use std::fmt;

/// An API key. Its `Debug` shows only that a key is there; it has no `Display`; the only
/// way out is the request header, marked sensitive.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(Box<str>);

impl ApiKey {
    /// A key from a string (surrounding whitespace is trimmed). `None` if empty.
    pub fn new(key: impl AsRef<str>) -> Option<Self> {
        let k = key.as_ref().trim();
        (!k.is_empty()).then(|| Self(Box::from(k)))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Where presets read environment variables from: the process environment by default, or
/// anything else (a secrets manager, a test's map).
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

/// The first of `names` that is set to a non-empty key.
pub(crate) fn key_from(env: &dyn Env, names: &[&str]) -> Option<ApiKey> {
    names.iter().find_map(|n| env.var(n).and_then(ApiKey::new))
}
