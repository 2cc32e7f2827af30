//! Property tests: no input makes a parser or the classifier panic.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use towerguard_llm_core::{
    LlmError, MAX_DETAIL_LEN, classify_http_error_at, parse_error_body, parse_retry_after_at,
    redact_secrets,
};

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        "[0-9.\\-eE+]{0,30}".prop_map(String::into_bytes),
        "(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
            .prop_map(String::into_bytes),
        Just(b"true".to_vec()),
        Just(b"false".to_vec()),
    ]
}

fn headers() -> impl Strategy<Value = HeaderMap> {
    let names = prop_oneof![
        Just("retry-after"),
        Just("retry-after-ms"),
        Just("x-should-retry"),
        Just("x-other"),
    ];
    proptest::collection::vec((names, header_value()), 0..5).prop_map(|pairs| {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(v) = HeaderValue::from_bytes(&value) {
                h.append(HeaderName::from_static(name), v);
            }
        }
        h
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<String>().prop_map(String::into_bytes),
        // JSON-ish shapes with random leaves
        (any::<String>(), any::<String>(), any::<i64>()).prop_map(|(m, t, c)| {
            serde_json::json!({"error": {"message": m, "type": t, "code": c}})
                .to_string()
                .into_bytes()
        }),
        (any::<String>(), any::<String>()).prop_map(|(m, t)| {
            serde_json::json!([{"type": "error", "error": {"type": t, "message": m}}])
                .to_string()
                .into_bytes()
        }),
        "[\\[\\]{}\":,a-z0-9 ]{0,200}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn classify_never_panics(status in 0u16..1000, h in headers(), b in body(), secs in 0u64..(1 << 40)) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let err = classify_http_error_at(status, &h, &b, now);
        prop_assert_eq!(err.status(), Some(status));
        // the detail is bounded, whatever the body
        if let Some(d) = err.detail() {
            prop_assert!(d.len() <= MAX_DETAIL_LEN + '…'.len_utf8());
        }
        let _ = (err.to_string(), format!("{err:?}"));
    }

    #[test]
    fn retry_after_never_panics(h in headers(), secs in 0u64..(1 << 40)) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let _ = parse_retry_after_at(&h, now);
    }

    #[test]
    fn error_body_never_panics(b in body()) {
        let _ = parse_error_body(&b);
    }

    #[test]
    fn redaction_never_panics_and_removes_keys(prefix in "[ a-zA-Z:,.]{0,30}", key in "sk-[A-Za-z0-9]{20,40}", suffix in "[ a-zA-Z:,.]{0,30}") {
        let text = format!("{prefix} {key} {suffix}");
        let out = redact_secrets(&text);
        prop_assert!(!out.contains(&key));
        let err = LlmError::new(towerguard_llm_core::ErrorKind::Authentication).with_detail(&text);
        let debug = format!("{err:?}");
        prop_assert!(!debug.contains(&key));
        prop_assert!(!err.to_string().contains(&key));
    }
}
