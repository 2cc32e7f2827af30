//! Removal of secrets from text that may reach logs or clients.

/// Prefixes of the API keys our providers issue (and a few common others).
const KEY_PREFIXES: &[&str] = &[
    "sk-", "sk_", "xai-", "gsk_", "pk-", "rk-", "hf_", "ghp_", "AIza", "key-", "sess-",
];

/// The placeholder that replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*' | '.' | '+' | '/' | '=')
}

fn looks_like_secret(token: &str) -> bool {
    let token = token.trim_end_matches('.');
    if token.len() >= 8 && KEY_PREFIXES.iter().any(|p| token.starts_with(p)) {
        return true;
    }
    // Long mixed letters-and-digits runs (bearer tokens, base64 keys, masked keys).
    if token.len() >= 24 {
        let digits = token.bytes().filter(u8::is_ascii_digit).count();
        let letters = token.bytes().filter(u8::is_ascii_alphabetic).count();
        let stars = token.bytes().filter(|b| *b == b'*').count();
        return (digits > 0 && letters > 0) || stars >= 4;
    }
    false
}

/// Replaces anything in `text` that looks like an API key or bearer token with
/// [`REDACTED`]: words with a known key prefix (`sk-`, `xai-`, `gsk_`, ...), and long runs
/// mixing letters and digits. Provider error messages sometimes echo (part of) the key, so
/// every provider text is passed through this before it is stored on an error.
///
/// ```
/// use towerguard_llm_core::redact_secrets;
/// let msg = "Incorrect API key provided: sk-proj-abc123def456. You can find your key at ...";
/// assert_eq!(
///     redact_secrets(msg),
///     "Incorrect API key provided: [REDACTED]. You can find your key at ..."
/// );
/// ```
pub fn redact_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest.find(is_token_char).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        let token = &rest[..end];
        if looks_like_secret(token) {
            out.push_str(REDACTED);
            // keep a sentence-ending dot
            if token.ends_with('.') {
                out.push('.');
            }
        } else {
            out.push_str(token);
        }
        rest = &rest[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_known_prefixes() {
        for key in [
            "sk-proj-Abc123xyz789",
            "sk-ant-api03-abcdefgh",
            "xai-12345678abcd",
            "gsk_abcdefgh1234",
        ] {
            let out = redact_secrets(&format!("bad key {key} given"));
            assert_eq!(out, "bad key [REDACTED] given", "{key}");
        }
    }

    #[test]
    fn removes_masked_and_bearer_tokens() {
        let out = redact_secrets("Authorization: Bearer abcdefghijklmnop1234567890XYZ");
        assert_eq!(out, "Authorization: Bearer [REDACTED]");
        let out = redact_secrets("key sk-********************************abcd, please");
        assert_eq!(out, "key [REDACTED], please");
    }

    #[test]
    fn keeps_ordinary_text() {
        let msg = "This model's maximum context length is 128000 tokens. However, you requested 130000 tokens.";
        assert_eq!(redact_secrets(msg), msg);
        assert_eq!(
            redact_secrets("Überlastet – bitte später"),
            "Überlastet – bitte später"
        );
    }
}
