//! Extractors: a request body decoded in either wire format, or refused in that format.

use super::*;

/// A request body that was refused: answers in its format (400 naming the field for a body
/// that does not decode or could not be read, 413 for one larger than the body limit).
#[derive(Debug)]
pub struct RequestRejection {
    format: Format,
    status: StatusCode,
    error: LlmError,
}

impl RequestRejection {
    /// The format the body was meant to be in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The status it answers with (400 or 413).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Whether the body was larger than the limit (413).
    pub fn is_too_large(&self) -> bool {
        self.status == StatusCode::PAYLOAD_TOO_LARGE
    }

    /// Why (an [`ErrorKind::InvalidRequest`] whose client message names the field).
    pub fn error(&self) -> &LlmError {
        &self.error
    }

    /// The error, owned.
    pub fn into_error(self) -> LlmError {
        self.error
    }
}

impl std::fmt::Display for RequestRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} request refused ({}): {}",
            self.format.as_str(),
            self.status.as_u16(),
            self.error.client_message()
        )
    }
}

impl std::error::Error for RequestRejection {}

impl IntoResponse for RequestRejection {
    fn into_response(self) -> Response {
        error_response_with_status(self.format, &self.error, self.status)
    }
}

/// Reads and decodes the body of `req` in `format`, within axum's body limit.
async fn extract<S: Send + Sync>(
    format: Format,
    req: Request,
    state: &S,
) -> Result<LlmRequest, RequestRejection> {
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        let too_large = rejection.status() == StatusCode::PAYLOAD_TOO_LARGE;
        let (status, message) = if too_large {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is larger than the limit",
            )
        } else {
            (
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            )
        };
        RequestRejection {
            format,
            status,
            error: LlmError::new(ErrorKind::InvalidRequest).with_message(message),
        }
    })?;
    format.decode(&bytes).map_err(|error| RequestRejection {
        format,
        status: StatusCode::BAD_REQUEST,
        error,
    })
}

/// An OpenAI chat-completions request body, decoded
/// ([`LlmRequest::from_openai_json`]); refused with a [`RequestRejection`] in OpenAI's
/// format.
#[derive(Debug, Clone)]
pub struct OpenAiRequest(pub LlmRequest);

/// An Anthropic Messages request body, decoded ([`LlmRequest::from_anthropic_json`]);
/// refused with a [`RequestRejection`] in Anthropic's format.
#[derive(Debug, Clone)]
pub struct AnthropicRequest(pub LlmRequest);

impl<S: Send + Sync> FromRequest<S> for OpenAiRequest {
    type Rejection = RequestRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        extract(Format::OpenAi, req, state).await.map(Self)
    }
}

impl<S: Send + Sync> FromRequest<S> for AnthropicRequest {
    type Rejection = RequestRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        extract(Format::Anthropic, req, state).await.map(Self)
    }
}
