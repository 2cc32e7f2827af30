//! The gateway's own refusal; the status table, the error bodies and Retry-After are the
//! facade's ([`towerguard::axum`]).

use axum::response::Response;
use http::StatusCode;
use towerguard::axum::{Format, error_response_with_status};
use towerguard_llm_core::{ErrorKind, LlmError};

/// The gateway's own 401 for an unknown or missing client key.
pub fn unauthorized(format: Format) -> Response {
    let err = LlmError::new(ErrorKind::Authentication).with_message(
        "invalid or missing API key (send `Authorization: Bearer <key>` or `x-api-key`)",
    );
    error_response_with_status(format, &err, StatusCode::UNAUTHORIZED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_is_401_in_both_formats() {
        let r = unauthorized(Format::OpenAi);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = unauthorized(Format::Anthropic);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
}
