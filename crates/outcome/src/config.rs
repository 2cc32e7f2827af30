//! Configuration rejected when a layer is built.

use std::borrow::Cow;
use std::fmt;

/// Invalid configuration, naming the field at fault. Every layer's builder returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: Cow<'static, str>,
    reason: Cow<'static, str>,
}

impl ConfigError {
    /// `field` (e.g. `"max_retries"` or `"budgets[2].limit"`) is invalid because of `reason`.
    pub fn new(field: impl Into<Cow<'static, str>>, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field at fault.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// Why it was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The same error with its field placed under `prefix` (`retry` + `max_retries` =
    /// `retry.max_retries`), for configurations nested in a larger one.
    pub fn under(self, prefix: &str) -> Self {
        Self {
            field: Cow::Owned(format!("{prefix}.{}", self.field)),
            reason: self.reason,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: `{}` {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Checks shared by the builders.
impl ConfigError {
    /// `Err` naming `field` unless `value` is finite and not negative.
    pub fn check_non_negative(field: &'static str, value: f64) -> Result<f64, ConfigError> {
        if value.is_finite() && value >= 0.0 {
            Ok(value)
        } else {
            Err(ConfigError::new(
                field,
                format!("must be a finite number at least 0, got {value}"),
            ))
        }
    }

    /// `Err` naming `field` unless `value` is in `min..=max`.
    pub fn check_range<T: PartialOrd + fmt::Display + Copy>(
        field: &'static str,
        value: T,
        min: T,
        max: T,
    ) -> Result<T, ConfigError> {
        if value >= min && value <= max {
            Ok(value)
        } else {
            Err(ConfigError::new(
                field,
                format!("must be between {min} and {max}, got {value}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_field() {
        let e = ConfigError::new("max_retries", "must be at most 100").under("retry");
        assert_eq!(e.field(), "retry.max_retries");
        assert_eq!(
            e.to_string(),
            "invalid configuration: `retry.max_retries` must be at most 100"
        );
        assert!(ConfigError::check_non_negative("price", f64::NAN).is_err());
        assert!(ConfigError::check_non_negative("price", -1.0).is_err());
        assert!(ConfigError::check_non_negative("price", 0.0).is_ok());
        assert!(ConfigError::check_range("n", 0u32, 1, 10).is_err());
    }
}
