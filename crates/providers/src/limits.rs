//! A provider client's settings: its timeouts and limits, and the error naming a setting
//! that is wrong.

use std::fmt;
use std::time::Duration;

/// Invalid provider configuration, naming the field at fault (never its secret value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// The field at fault.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid provider configuration: `{}` {}",
            self.field, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

/// Timeouts and limits of a provider client.
///
/// ```
/// use std::time::Duration;
/// use towerguard_providers::Limits;
///
/// let limits = Limits {
///     first_chunk_timeout: Duration::from_secs(20),
///     idle_timeout: Duration::from_secs(30),
///     ..Limits::default()
/// };
/// # let _ = limits;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest wait to open a connection (default 10 s).
    pub connect_timeout: Duration,
    /// Longest wait for the whole answer, body included (default 120 s). Not applied to a
    /// stream, whose answer may rightly take longer: `first_chunk_timeout` and
    /// `idle_timeout` bound it instead.
    pub request_timeout: Duration,
    /// Largest response body read (default 8 MiB): a broken upstream cannot exhaust memory.
    /// For a stream, the error body of a failed status is capped by it; the stream itself by
    /// `max_event_bytes`.
    pub max_response_bytes: usize,
    /// For a stream (`stream: true`): the longest wait from sending the request to its first
    /// chunk (default 60 s). Until then a failure is the call's error, which retry and
    /// fallback handle like any other; a timeout is [`ErrorKind::Timeout`](towerguard_llm_core::ErrorKind::Timeout).
    pub first_chunk_timeout: Duration,
    /// For a stream: the longest wait for the next chunk once the caller asks for it (default
    /// 60 s); the stream then ends with an [`ErrorKind::Timeout`](towerguard_llm_core::ErrorKind::Timeout) error item.
    pub idle_timeout: Duration,
    /// For a stream: the largest server-sent event (or line) read, in bytes (default 1 MiB);
    /// a larger one ends the stream with an [`ErrorKind::Server`](towerguard_llm_core::ErrorKind::Server) error item (or fails the
    /// call, before the first chunk), so a broken upstream cannot exhaust memory.
    pub max_event_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            max_response_bytes: 8 * 1024 * 1024,
            first_chunk_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_event_bytes: 1024 * 1024,
        }
    }
}

impl Limits {
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::new(
                "connect_timeout",
                "must be longer than zero",
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(ConfigError::new(
                "request_timeout",
                "must be longer than zero",
            ));
        }
        if self.max_response_bytes == 0 {
            return Err(ConfigError::new("max_response_bytes", "must be above zero"));
        }
        if self.first_chunk_timeout.is_zero() {
            return Err(ConfigError::new(
                "first_chunk_timeout",
                "must be longer than zero",
            ));
        }
        if self.idle_timeout.is_zero() {
            return Err(ConfigError::new("idle_timeout", "must be longer than zero"));
        }
        if self.max_event_bytes == 0 {
            return Err(ConfigError::new("max_event_bytes", "must be above zero"));
        }
        Ok(())
    }
}
