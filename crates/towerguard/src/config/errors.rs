//! [`ConfigErrors`]: every mistake of a configuration at once.

use std::fmt;

/// One mistake: the field at fault (`providers.openai.retry.max_retries`), why, and the
/// environment variable it came from, if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    field: String,
    reason: String,
    env: Option<String>,
}

impl FieldError {
    /// `field` is wrong because of `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
            env: None,
        }
    }

    /// The same mistake, set by the environment variable `var`.
    pub fn from_env(mut self, var: impl Into<String>) -> Self {
        self.env = Some(var.into());
        self
    }

    /// The field's path (empty for the file as a whole).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The environment variable that set the value, if one did.
    pub fn env_var(&self) -> Option<&str> {
        self.env.as_deref()
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str("the configuration")?;
        } else {
            write!(f, "`{}`", self.field)?;
        }
        if let Some(var) = &self.env {
            write!(f, " (from {var})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for FieldError {}

/// Every mistake found in a configuration, in the order found. Its `Display` lists them all,
/// one a line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors {
    errors: Vec<FieldError>,
}

impl ConfigErrors {
    pub(crate) fn one(e: FieldError) -> Self {
        Self { errors: vec![e] }
    }

    pub(crate) fn push(&mut self, e: FieldError) {
        self.errors.push(e);
    }

    pub(crate) fn into_result<T>(self, ok: T) -> Result<T, Self> {
        if self.errors.is_empty() {
            Ok(ok)
        } else {
            Err(self)
        }
    }

    /// The mistakes.
    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.errors.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Whether one names `field`.
    pub fn names(&self, field: &str) -> bool {
        self.errors.iter().any(|e| e.field == field)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.len() {
            1 => write!(f, "invalid configuration: ")?,
            n => writeln!(f, "invalid configuration ({n} errors):")?,
        }
        for (i, e) in self.errors.iter().enumerate() {
            if self.errors.len() > 1 {
                write!(f, "  - ")?;
            }
            write!(f, "{e}")?;
            if i + 1 < self.errors.len() {
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<crate::outcome::ConfigError> for ConfigErrors {
    fn from(e: crate::outcome::ConfigError) -> Self {
        Self::one(FieldError::new(e.field(), e.reason()))
    }
}

impl IntoIterator for ConfigErrors {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}
