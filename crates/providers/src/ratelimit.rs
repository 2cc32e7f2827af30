//! Rate-limit headers, exposed as hints on responses and errors.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// What a provider's rate-limit headers said (OpenAI `x-ratelimit-*`, Anthropic
/// `anthropic-ratelimit-*`). Found in the extensions of a response or error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitInfo {
    /// Requests allowed per period.
    pub requests_limit: Option<u64>,
    /// Requests left in the period.
    pub requests_remaining: Option<u64>,
    /// Until the request allowance is full again.
    pub requests_reset: Option<Duration>,
    /// Tokens allowed per period.
    pub tokens_limit: Option<u64>,
    /// Tokens left in the period.
    pub tokens_remaining: Option<u64>,
    /// Until the token allowance is full again.
    pub tokens_reset: Option<Duration>,
}

impl RateLimitInfo {
    /// Reads OpenAI's and Anthropic's rate-limit headers; `None` if there are none.
    pub fn from_headers(headers: &HeaderMap, now: SystemTime) -> Option<Self> {
        let num = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
        let text = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
        let info = if headers.contains_key("x-ratelimit-limit-requests")
            || headers.contains_key("x-ratelimit-limit-tokens")
        {
            RateLimitInfo {
                requests_limit: num("x-ratelimit-limit-requests"),
                requests_remaining: num("x-ratelimit-remaining-requests"),
                requests_reset: text("x-ratelimit-reset-requests").and_then(parse_go_duration),
                tokens_limit: num("x-ratelimit-limit-tokens"),
                tokens_remaining: num("x-ratelimit-remaining-tokens"),
                tokens_reset: text("x-ratelimit-reset-tokens").and_then(parse_go_duration),
            }
        } else if headers.contains_key("anthropic-ratelimit-requests-limit")
            || headers.contains_key("anthropic-ratelimit-tokens-limit")
        {
            let until = |name: &str| {
                let at = humantime::parse_rfc3339_weak(text(name)?).ok()?;
                Some(at.duration_since(now).unwrap_or(Duration::ZERO))
            };
            RateLimitInfo {
                requests_limit: num("anthropic-ratelimit-requests-limit"),
                requests_remaining: num("anthropic-ratelimit-requests-remaining"),
                requests_reset: until("anthropic-ratelimit-requests-reset"),
                tokens_limit: num("anthropic-ratelimit-tokens-limit"),
                tokens_remaining: num("anthropic-ratelimit-tokens-remaining"),
                tokens_reset: until("anthropic-ratelimit-tokens-reset"),
            }
        } else {
            return None;
        };
        Some(info)
    }

    /// The wait these headers imply, used as the Retry-After hint of a 429 that carries no
    /// explicit one (`retry-after-ms`, `retry-after`, LiteLLM's `llm_provider-retry-after*`).
    ///
    /// - If a `remaining` count is 0, that allowance is what refused us: the hint is the reset
    ///   of the exhausted allowance, or the larger of the two when both are exhausted (both
    ///   must refill before a call can pass).
    /// - Otherwise we cannot tell which allowance refused us (typically the request needs
    ///   more tokens than remain): the hint is the smaller of the resets given, so the retry
    ///   comes as early as it could succeed; the retry layer's own backoff and limit still
    ///   apply.
    /// - `None` when the relevant resets were not sent or not readable.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerguard_providers::RateLimitInfo;
    ///
    /// let info = RateLimitInfo {
    ///     requests_remaining: Some(0),
    ///     requests_reset: Some(Duration::from_secs(360)),
    ///     tokens_remaining: Some(1200),
    ///     tokens_reset: Some(Duration::from_millis(12)),
    ///     ..RateLimitInfo::default()
    /// };
    /// assert_eq!(info.retry_hint(), Some(Duration::from_secs(360)));
    /// ```
    pub fn retry_hint(&self) -> Option<Duration> {
        let pairs = [
            (self.requests_remaining, self.requests_reset),
            (self.tokens_remaining, self.tokens_reset),
        ];
        let exhausted = pairs
            .iter()
            .filter(|(left, _)| *left == Some(0))
            .filter_map(|(_, reset)| *reset)
            .max();
        exhausted.or_else(|| pairs.iter().filter_map(|(_, reset)| *reset).min())
    }
}

/// OpenAI's reset durations, in Go's `time.Duration` syntax: `6m0s`, `1h2m3.5s`, `12ms`,
/// `0.5s`, `20s`, `0`. Units `h`, `m`, `s`, `ms`, `us`/`µs`, `ns`; no sign. `None` for
/// anything else (garbage, negative, overflowing), never a panic.
///
/// The one parser of these durations in the workspace: [`RateLimitInfo`] reads the headers
/// with it, and the 429 hint of [`RateLimitInfo::retry_hint`] comes from there.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("12ms"), Some(Duration::from_millis(12)));
        assert_eq!(parse_go_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_go_duration("0.5s"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("20s"), Some(Duration::from_secs(20)));
        assert_eq!(
            parse_go_duration("1h2m3.5s"),
            Some(Duration::from_millis(3_723_500))
        );
        assert_eq!(parse_go_duration(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        for bad in [
            "",
            "s",
            "5x",
            "1.2.3s",
            "-1s",
            "+1s",
            "99999999999999999999999h",
            "1e3s",
            "inf",
            "NaN",
            "1h 2m",
            ".",
            "12",
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn headers_of_both_providers() {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-limit-requests", "500".parse().unwrap());
        h.insert("x-ratelimit-remaining-requests", "499".parse().unwrap());
        h.insert("x-ratelimit-reset-requests", "120ms".parse().unwrap());
        h.insert("x-ratelimit-remaining-tokens", "29000".parse().unwrap());
        let info = RateLimitInfo::from_headers(&h, SystemTime::now()).unwrap();
        assert_eq!(info.requests_remaining, Some(499));
        assert_eq!(info.requests_reset, Some(Duration::from_millis(120)));
        assert_eq!(info.tokens_remaining, Some(29000));

        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert("anthropic-ratelimit-requests-limit", "50".parse().unwrap());
        // 2023-11-14T22:13:40Z is 20 s after `now`
        h.insert(
            "anthropic-ratelimit-requests-reset",
            "2023-11-14T22:13:40Z".parse().unwrap(),
        );
        let info = RateLimitInfo::from_headers(&h, now).unwrap();
        assert_eq!(info.requests_limit, Some(50));
        assert_eq!(info.requests_reset, Some(Duration::from_secs(20)));
        assert!(RateLimitInfo::from_headers(&HeaderMap::new(), now).is_none());
    }

    #[test]
    fn the_hint_is_the_exhausted_allowance_else_the_soonest_reset() {
        let s = Duration::from_secs;
        let info = |rq: Option<u64>, rr: Option<u64>, tq: Option<u64>, tr: Option<u64>| {
            RateLimitInfo {
                requests_remaining: rq,
                requests_reset: rr.map(s),
                tokens_remaining: tq,
                tokens_reset: tr.map(s),
                ..RateLimitInfo::default()
            }
            .retry_hint()
        };
        // only tokens exhausted: their reset, even though requests reset sooner
        assert_eq!(info(Some(10), Some(1), Some(0), Some(20)), Some(s(20)));
        // only requests exhausted: theirs, even though it is the later one
        assert_eq!(info(Some(0), Some(360), Some(500), Some(2)), Some(s(360)));
        // both exhausted: the larger
        assert_eq!(info(Some(0), Some(5), Some(0), Some(30)), Some(s(30)));
        // none exhausted (or not said): the smaller
        assert_eq!(info(Some(3), Some(5), Some(100), Some(30)), Some(s(5)));
        assert_eq!(info(None, Some(7), None, Some(4)), Some(s(4)));
        // an exhausted allowance without a readable reset: the smaller of the others
        assert_eq!(info(Some(0), None, Some(9), Some(8)), Some(s(8)));
        assert_eq!(info(Some(0), None, None, None), None);
        assert_eq!(RateLimitInfo::default().retry_hint(), None);
    }
}
