//! Inputs the fuzz targets (`fuzz/`, run by `scripts/fuzz`) found, kept as tests with the
//! bytes they found. Each target decodes, encodes again in both formats and decodes its own
//! encoding again.

use std::sync::Arc;

use serde_json::Value;
use towerguard_llm_core::{LlmRequest, LlmResponse};

/// `fuzz/artifacts/anthropic_request/crash-426065dd...`: an Anthropic request with a field
/// Anthropic does not name (`user`, an integer).
const ANTHROPIC_WITH_USER: &[u8] = br#"{"model":"m","max_toke":"m","max_tokens":1,"user":1,"messages":[{"role":"user","content":"x"}]}"#;

/// `fuzz/artifacts/openai_request/crash-c3b13d32...`: an OpenAI request with a field OpenAI
/// does not name (`stop_sequences`, a number) and a system message only.
const OPENAI_WITH_STOP_SEQUENCES: &[u8] = br#"{"model":"gpt-4o","messages":[{"role":"system","cocall_id":"c1stop","content":"ok"}],"stop_sequences":676,"tempertemperature":0.5,"~op_r":0,"er":"u","qr":"u","see))))sees))))))))))\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\)atureolstop_p":1,"se_format":{"type":"js_ecbonojt"},"ee))))))))))))))))))))))":0,"reasoning_eff%ort":"low"}"#;

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

/// Encoding a decoded request in its own format and decoding that again gives the same
/// request: a field the format does not name stays unknown to it, kept and written back.
#[test]
fn requests_with_unknown_fields_round_trip_in_their_own_format() {
    let req = LlmRequest::from_anthropic_json(ANTHROPIC_WITH_USER).unwrap();
    let again = LlmRequest::from_anthropic_json(&req.to_anthropic_json(1024).unwrap()).unwrap();
    assert_eq!(again.options().extra_body, req.options().extra_body);
    assert_eq!(json(&again.to_anthropic_json(1024).unwrap())["user"], 1);

    let req = LlmRequest::from_openai_json(OPENAI_WITH_STOP_SEQUENCES).unwrap();
    let again = LlmRequest::from_openai_json(&req.to_openai_json().unwrap()).unwrap();
    assert_eq!(again.options().extra_body, req.options().extra_body);
    assert_eq!(
        json(&again.to_openai_json().unwrap())["stop_sequences"],
        676
    );
}

/// What the fuzzers flagged: an unknown field is sent on unchanged to the other format too
/// (as documented for `extra_body`: "written back where the model did not set that key"),
/// where it may be a field of that format with a value it refuses. Translating never
/// panics; the upstream refuses such a body (a client fault, 400), and so does our own
/// decoder.
#[test]
fn an_unknown_field_is_sent_on_unchanged_to_the_other_format() {
    let req = LlmRequest::from_anthropic_json(ANTHROPIC_WITH_USER).unwrap();
    let openai = req.to_openai_json().unwrap();
    assert_eq!(json(&openai)["user"], 1);
    let err = LlmRequest::from_openai_json(&openai).unwrap_err();
    assert!(err.client_message().contains("`user`"), "{err}");

    let req = LlmRequest::from_openai_json(OPENAI_WITH_STOP_SEQUENCES).unwrap();
    let anthropic = req.to_anthropic_json(1024).unwrap();
    assert_eq!(json(&anthropic)["stop_sequences"], 676);
    let err = LlmRequest::from_anthropic_json(&anthropic).unwrap_err();
    assert!(err.client_message().contains("`stop_sequences`"), "{err}");
}

/// A field the model sets is never overridden by an unknown field of the same name in the
/// other format: `stop` read from OpenAI is Anthropic's `stop_sequences`, whatever extra
/// `stop_sequences` came along.
#[test]
fn a_field_the_model_sets_wins_over_an_unknown_one() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":["end"],"stop_sequences":676}"#;
    let req = LlmRequest::from_openai_json(body).unwrap();
    let anthropic = json(&req.to_anthropic_json(1024).unwrap());
    assert_eq!(anthropic["stop_sequences"], serde_json::json!(["end"]));
    assert!(LlmRequest::from_anthropic_json(&serde_json::to_vec(&anthropic).unwrap()).is_ok());
}

/// `fuzz/artifacts/anthropic_request/crash-99dcfc2b...` (shortened): an unknown field holding
/// an integer too large for 64 bits.
const ANTHROPIC_WITH_HUGE_NUMBER: &[u8] = br#"{"model":"claude-sonnet-4","maX_tokens":1088888888888888888888824,"max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#;

/// `fuzz/artifacts/anthropic_response/crash-...` (shortened): the same in an answer's
/// unknown usage field.
const ANTHROPIC_ANSWER_WITH_HUGE_NUMBER: &[u8] = br#"{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":20,"output_tokens":5,"sache_r$ead_output_tokeninput_tokens":88288888888888888888888888888888888888888888888888888888888}}"#;

/// Within the last digit a float of 17 digits has.
fn close(a: &Value, b: f64) -> bool {
    a.as_f64()
        .is_some_and(|a| (a - b).abs() <= 1e-15 * a.abs().max(b.abs()))
}

/// What the fuzzers flagged: a number too large for 64 bits in a field we pass on is kept as
/// the nearest float, and a round trip through our encoding may move it by one unit of its
/// last (17th) digit: serde_json parses floats best-effort (exact only with its
/// `float_roundtrip` feature). Nothing else changes, and nothing panics.
#[test]
fn a_huge_number_in_an_unknown_field_is_kept_to_its_last_digit() {
    let req = LlmRequest::from_anthropic_json(ANTHROPIC_WITH_HUGE_NUMBER).unwrap();
    let once = req.to_anthropic_json(1024).unwrap();
    assert!(close(&json(&once)["maX_tokens"], 1.088_888_888_888_889e24));
    let again = LlmRequest::from_anthropic_json(&once).unwrap();
    let twice = again.to_anthropic_json(1024).unwrap();
    assert!(close(&json(&twice)["maX_tokens"], 1.088_888_888_888_889e24));
    assert_eq!(again.messages(), req.messages());

    let provider: Arc<str> = Arc::from("anthropic");
    let model: Arc<str> = Arc::from("m");
    let decode = |body: &[u8]| LlmResponse::from_anthropic_json(body, &provider, &model).unwrap();
    let once = decode(ANTHROPIC_ANSWER_WITH_HUGE_NUMBER)
        .to_anthropic_json()
        .unwrap();
    let field = "sache_r$ead_output_tokeninput_tokens";
    assert!(close(
        &json(&once)["usage"][field],
        8.828_888_888_888_889e58
    ));
    let twice = decode(&once).to_anthropic_json().unwrap();
    assert!(close(
        &json(&twice)["usage"][field],
        8.828_888_888_888_889e58
    ));
    assert_eq!(json(&twice)["usage"]["output_tokens"], 5);
}
