//! [`Secret`]: a value that never shows itself.

use std::fmt;

/// A secret read from the environment (an API key, the admin token). Its `Debug` shows only
/// that it is there; it has no `Display` and is never serialized: the only way out is
/// [`expose`](Self::expose).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<str>);

impl Secret {
    /// A secret from a string (surrounding whitespace trimmed); `None` if empty.
    pub fn new(value: impl AsRef<str>) -> Option<Self> {
        let v = value.as_ref().trim();
        (!v.is_empty()).then(|| Self(Box::from(v)))
    }

    /// The value, to hand to the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
