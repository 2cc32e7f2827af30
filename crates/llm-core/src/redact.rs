//! Removal of secrets from text that may reach logs or clients.

/// Prefixes of the API keys our providers issue (and a few common others).
const KEY_PREFIXES: &[&str] = &[
    "sk-", "sk_", "xai-", "gsk_", "pk-", "rk-", "hf_", "ghp_", "AIza", "key-", "sess-",
];

/// How far past a cut the word crossing it is read to judge it (bytes).
pub(crate) const WORD_LIMIT: usize = 4096;

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

/// Redacts `text` ([`redact_secrets`]) and cuts the result to at most `max` bytes (on a char
/// boundary), appending `…` when something was cut.
///
/// Redaction runs first, on every token the cut touches: the word crossing the `max`-th byte
/// is judged whole, so a cut never leaves the first characters of a secret behind (cutting
/// first would turn `abcdefghijklmnop1234567890XYZ` into a harmless-looking prefix that
/// [`redact_secrets`] then keeps). Only the prefix up to the end of that word (at most
/// [`WORD_LIMIT`] bytes past the cut) is scanned, so a huge text costs no more than that.
pub(crate) fn redact_and_cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return redact_secrets(text);
    }
    let mut end = floor_char_boundary(text, max);
    // Extend to the end of the token crossing the cut, so it is judged whole (up to
    // WORD_LIMIT more bytes: a longer run is judged by that much of it).
    let window = &text[end..floor_char_boundary(text, end.saturating_add(WORD_LIMIT))];
    end += window
        .find(|c: char| !is_token_char(c))
        .unwrap_or(window.len());
    let mut out = redact_secrets(&text[..end]);
    if out.len() > max || end < text.len() {
        out.truncate(floor_char_boundary(&out, max));
        out.push('…');
    }
    out
}

/// The largest char boundary of `s` at or below `i`.
pub(crate) fn floor_char_boundary(s: &str, i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    let mut i = i;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
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
    fn a_secret_crossing_the_cut_is_removed_whole() {
        // A bearer-like token without a known prefix, starting 10 bytes before the cut: cut
        // first, its 10 leading characters would be too short to look like a secret.
        let token = "abcdefghij1234567890KLMNOPQRSTUV";
        let text = format!("{}{token} and more", "x ".repeat(45));
        assert_eq!(text.find(token), Some(90));
        let out = redact_and_cut(&text, 100);
        assert!(!out.contains("abcdefghij"), "{out}");
        assert!(
            out.starts_with(&"x ".repeat(45)) && out.contains("[REDAC"),
            "{out}"
        );
        assert!(
            out.ends_with('…') && out.len() <= 100 + '…'.len_utf8(),
            "{out}"
        );
        // short enough: only redacted, nothing cut
        assert_eq!(
            redact_and_cut("key sk-proj-abcdefgh1", 100),
            "key [REDACTED]"
        );
        // an ordinary word crossing the cut is just cut
        assert_eq!(redact_and_cut("hello wonderful world", 8), "hello wo…");
        // never splits a character
        assert_eq!(redact_and_cut("ééééé", 3), "é…");
        // a huge secret-looking run at the cut is judged by its first WORD_LIMIT bytes
        let huge = format!("see {}", "a1".repeat(WORD_LIMIT));
        assert_eq!(redact_and_cut(&huge, 10), "see [REDAC…");
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
