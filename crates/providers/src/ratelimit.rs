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
}

/// OpenAI's reset durations: `6m0s`, `1h2m3s`, `12ms`, `0.5s`, `20s`.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
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
        for bad in ["", "s", "5x", "1.2.3s", "-1s", "99999999999999999999999h"] {
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
}
