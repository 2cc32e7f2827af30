//! API keys that never show themselves, and where they come from.

use std::borrow::Cow;
use std::fmt;

use http::HeaderValue;
use towerguard_llm_core::REDACTED;

/// An API key. Its `Debug` shows only that a key is there; it has no `Display`; the only
/// way out is the request header, marked sensitive.
///
/// Once a client is built the key lives only in that sensitive header value; the transport
/// reads it from there to replace its exact text in every error detail, so a key
/// of any format (not only `sk-...`) never reaches a log or a client.
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

/// The secrets one request carries, borrowed from its header values marked sensitive (the
/// `Authorization: Bearer` and `x-api-key` values the clients build): the key text is never
/// copied, only looked up where a detail is built.
///
/// [`scrub`](Self::scrub) and [`scrub_bytes`](Self::scrub_bytes) replace each key's exact
/// text (and its JSON-escaped form, as a body may echo it) with
/// [`REDACTED`]. They run before llm-core's generic redaction
/// and before any cut, so a key that looks like nothing in particular, or one crossing the
/// cut, is still removed whole. Nothing is allocated when no key occurs.
#[derive(Clone, Copy)]
pub(crate) struct Secrets<'a> {
    headers: &'a [(&'static str, HeaderValue)],
}

impl fmt::Debug for Secrets<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets(<redacted>)")
    }
}

impl<'a> Secrets<'a> {
    /// The sensitive values among `headers`.
    pub(crate) fn of(headers: &'a [(&'static str, HeaderValue)]) -> Self {
        Self { headers }
    }

    /// Each secret's text: a sensitive header's value without an auth scheme (`Bearer `).
    fn texts(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(|(_, v)| v.is_sensitive())
            .map(|(_, v)| strip_scheme(v.as_bytes()))
            .filter(|t| !t.is_empty())
    }

    /// `text` with every secret replaced; borrowed if none occurs.
    pub(crate) fn scrub<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match self.scrub_bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            // Replacing whole ASCII secrets with ASCII keeps the text UTF-8.
            Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }

    /// `body` with every secret (raw or JSON-escaped) replaced; borrowed if none occurs.
    pub(crate) fn scrub_bytes<'t>(&self, body: &'t [u8]) -> Cow<'t, [u8]> {
        let mut out = Cow::Borrowed(body);
        for secret in self.texts() {
            if let Some(replaced) = replace_all(&out, secret) {
                out = Cow::Owned(replaced);
            }
            if let Some(escaped) = json_escaped(secret) {
                if let Some(replaced) = replace_all(&out, &escaped.slash) {
                    out = Cow::Owned(replaced);
                }
                if let Some(replaced) = replace_all(&out, &escaped.plain) {
                    out = Cow::Owned(replaced);
                }
            }
        }
        out
    }
}

/// The value after `Bearer ` (any case), or the whole value.
fn strip_scheme(value: &[u8]) -> &[u8] {
    const BEARER: &[u8] = b"bearer ";
    match value.get(..BEARER.len()) {
        Some(head) if head.eq_ignore_ascii_case(BEARER) => value[BEARER.len()..].trim_ascii(),
        _ => value.trim_ascii(),
    }
}

/// A key's JSON-escaped spellings, if they differ from the key: `"` and `\` escaped, with
/// `/` as is (`plain`) or escaped as `\/` (`slash`, as PHP's encoder writes it).
struct Escaped {
    plain: Vec<u8>,
    slash: Vec<u8>,
}

fn json_escaped(secret: &[u8]) -> Option<Escaped> {
    if !secret.iter().any(|b| matches!(b, b'"' | b'\\' | b'/')) {
        return None;
    }
    let mut plain = Vec::with_capacity(secret.len() + 8);
    let mut slash = Vec::with_capacity(secret.len() + 8);
    for &b in secret {
        if matches!(b, b'"' | b'\\') {
            plain.push(b'\\');
            slash.push(b'\\');
        } else if b == b'/' {
            slash.push(b'\\');
        }
        plain.push(b);
        slash.push(b);
    }
    Some(Escaped { plain, slash })
}

/// `haystack` with every occurrence of `needle` replaced by [`REDACTED`], or `None` if there
/// is none.
fn replace_all(haystack: &[u8], needle: &[u8]) -> Option<Vec<u8>> {
    let find = |from: usize| {
        haystack
            .get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let mut at = find(0)?;
    let mut out = Vec::with_capacity(haystack.len());
    let mut done = 0;
    loop {
        out.extend_from_slice(&haystack[done..at]);
        out.extend_from_slice(REDACTED.as_bytes());
        done = at + needle.len();
        match find(done) {
            Some(next) => at = next,
            None => break,
        }
    }
    out.extend_from_slice(&haystack[done..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensitive(v: &str) -> HeaderValue {
        let mut v = HeaderValue::from_str(v).unwrap();
        v.set_sensitive(true);
        v
    }

    #[test]
    fn replaces_the_exact_keys_of_sensitive_headers_only() {
        let headers = [
            (
                "authorization",
                sensitive("Bearer abc123XYZ-secret-without-prefix"),
            ),
            ("x-api-key", sensitive("short")),
            ("anthropic-version", HeaderValue::from_static("2023-06-01")),
        ];
        let secrets = Secrets::of(&headers);
        let text = "key abc123XYZ-secret-without-prefix, again abc123XYZ-secret-without-prefix; \
                    short; version 2023-06-01";
        assert_eq!(
            secrets.scrub(text),
            "key [REDACTED], again [REDACTED]; [REDACTED]; version 2023-06-01"
        );
        // nothing found: borrowed, nothing allocated
        assert!(matches!(secrets.scrub("all clear"), Cow::Borrowed(_)));
        assert!(matches!(secrets.scrub_bytes(b""), Cow::Borrowed(_)));
        assert_eq!(format!("{secrets:?}"), "Secrets(<redacted>)");
    }

    #[test]
    fn replaces_json_escaped_spellings() {
        let headers = [("x-api-key", sensitive(r#"k/ey"q\uote"#))];
        let secrets = Secrets::of(&headers);
        let body = br#"{"a":"k/ey\"q\\uote","b":"k\/ey\"q\\uote","c":"k/ey"q\uote"}"#;
        let out = secrets.scrub_bytes(body);
        assert_eq!(
            &*out,
            br#"{"a":"[REDACTED]","b":"[REDACTED]","c":"[REDACTED]"}"#.as_slice()
        );
    }

    #[test]
    fn strips_the_scheme() {
        assert_eq!(strip_scheme(b"Bearer  tok "), b"tok");
        assert_eq!(strip_scheme(b"bearer tok"), b"tok");
        assert_eq!(strip_scheme(b"tok"), b"tok");
        assert_eq!(strip_scheme(b"Bear"), b"Bear");
    }
}
