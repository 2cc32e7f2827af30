//! Anthropic's Messages JSON <-> the model.

use std::sync::Arc;

use super::malformed;
use crate::{LlmError, LlmRequest, LlmResponse};

/// Reads a request body.
pub fn decode_request(body: &[u8]) -> Result<LlmRequest, LlmError> {
    let _ = body;
    Err(super::invalid("body", "cannot be read yet"))
}

/// Writes a request body.
pub fn encode_request(req: &LlmRequest, default_max_tokens: u32) -> Result<Vec<u8>, LlmError> {
    let _ = (req, default_max_tokens);
    Err(super::invalid("body", "cannot be written yet"))
}

/// Reads an answer.
pub fn decode_response(
    body: &[u8],
    provider: &Arc<str>,
    asked_model: &Arc<str>,
) -> Result<LlmResponse, LlmError> {
    let _ = (body, provider, asked_model);
    Err(malformed("not read yet"))
}

/// Writes an answer.
pub fn encode_response(resp: &LlmResponse) -> Result<Vec<u8>, LlmError> {
    let _ = resp;
    Err(malformed("not written yet"))
}

/// The `anthropic-beta` flag the encoded body needs, if any.
pub fn beta_headers(req: &LlmRequest) -> Option<&'static str> {
    let _ = req;
    None
}
