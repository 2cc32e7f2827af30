//! The conversation: [`Message`], its [`Content`] and [`Part`]s, and the [`ToolCall`]s an
//! assistant turn makes.
//!
//! The model follows OpenAI's chat-completions shape (a tool result is its own message with a
//! `tool_call_id`; an assistant turn carries its tool calls beside its content) and keeps what
//! Anthropic's Messages API adds (thinking blocks with their signatures, `cache_control` on
//! blocks, `is_error` on tool results), so a conversation read from either format can be sent
//! back to either provider without losing a turn.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// Who wrote a message in the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Role {
    /// Instructions for the model (OpenAI `system`, Anthropic's top-level `system`).
    System,
    /// Instructions from the developer (OpenAI's `developer`, which reasoning models read in
    /// place of `system`; Anthropic has only the top-level `system`, so it goes there).
    Developer,
    /// The end user.
    #[default]
    User,
    /// The model's earlier answers.
    Assistant,
    /// The result of a tool call (OpenAI `tool`; Anthropic a `tool_result` block in a user
    /// turn).
    Tool,
}

impl Role {
    /// The role's name on the OpenAI wire (`"system"`, `"developer"`, `"user"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    /// Whether this role carries instructions (`system` or `developer`).
    pub fn is_instruction(self) -> bool {
        matches!(self, Role::System | Role::Developer)
    }
}

/// Anthropic's prompt-cache breakpoint on a block (`{"type": "ephemeral", "ttl": ...}`).
/// OpenAI caches prompts by itself and has no such marker; its key is
/// [`ChatOptions::prompt_cache_key`](crate::ChatOptions::prompt_cache_key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CacheControl {
    /// The cache's time to live as Anthropic spells it (`"5m"`, `"1h"`); `None` is the
    /// provider's default (5 minutes).
    pub ttl: Option<String>,
}

/// Where the bytes of an image, audio clip or document are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MediaSource {
    /// A URL the provider fetches (`https://...`).
    Url(String),
    /// The bytes inline, base64-encoded, with their media type (`image/png`,
    /// `application/pdf`). OpenAI's `data:` URLs are read into this form.
    Base64 {
        /// The media type, e.g. `image/jpeg`.
        media_type: String,
        /// The base64 text.
        data: String,
    },
    /// A file uploaded to the provider earlier (OpenAI `file_id`, Anthropic's Files API).
    FileId(String),
}

/// One block of a message's content.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Part {
    /// Text.
    Text {
        /// The text.
        text: String,
        /// Anthropic's cache breakpoint after this block.
        cache_control: Option<CacheControl>,
    },
    /// An image.
    Image {
        /// Where the image is.
        source: MediaSource,
        /// OpenAI's `detail` (`"low"`, `"high"`, `"auto"`).
        detail: Option<String>,
        /// Anthropic's cache breakpoint after this block.
        cache_control: Option<CacheControl>,
    },
    /// An audio clip (OpenAI `input_audio`).
    Audio {
        /// The base64 audio.
        data: String,
        /// Its format (`"wav"`, `"mp3"`).
        format: String,
    },
    /// A document or file (OpenAI `file`, Anthropic `document`).
    File {
        /// Where the file is.
        source: MediaSource,
        /// Its name (OpenAI `filename`, Anthropic `title`).
        filename: Option<String>,
        /// Anthropic's cache breakpoint after this block.
        cache_control: Option<CacheControl>,
    },
    /// The model's visible reasoning (Anthropic `thinking`, with the signature Anthropic needs
    /// to accept it back; OpenAI-compatible servers' `reasoning_content`, without one).
    Thinking {
        /// The reasoning text.
        thinking: String,
        /// Anthropic's signature over it.
        signature: Option<String>,
    },
    /// Reasoning the provider encrypted (Anthropic `redacted_thinking`), kept to be sent back.
    RedactedThinking {
        /// The opaque data.
        data: String,
    },
    /// The model declined to answer (OpenAI `refusal`).
    Refusal {
        /// The refusal's text.
        refusal: String,
    },
}

impl Part {
    /// A text block.
    pub fn text(text: impl Into<String>) -> Self {
        Part::Text {
            text: text.into(),
            cache_control: None,
        }
    }

    /// An image fetched from a URL.
    pub fn image_url(url: impl Into<String>) -> Self {
        Part::Image {
            source: MediaSource::Url(url.into()),
            detail: None,
            cache_control: None,
        }
    }

    /// An inline base64 image.
    pub fn image_base64(media_type: impl Into<String>, data: impl Into<String>) -> Self {
        Part::Image {
            source: MediaSource::Base64 {
                media_type: media_type.into(),
                data: data.into(),
            },
            detail: None,
            cache_control: None,
        }
    }

    /// The bytes this block adds to a prompt, for token estimates (media count a flat amount).
    pub(crate) fn estimated_bytes(&self) -> usize {
        /// About 1,600 tokens: what a large image costs at either provider.
        const MEDIA_BYTES: usize = 6_400;
        match self {
            Part::Text { text, .. } => text.len(),
            Part::Thinking { thinking, .. } => thinking.len(),
            Part::RedactedThinking { data } => data.len(),
            Part::Refusal { refusal } => refusal.len(),
            Part::Image { .. } | Part::Audio { .. } | Part::File { .. } => MEDIA_BYTES,
        }
    }
}

/// A message's content: plain text, or a list of blocks.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Plain text (a JSON string on both wires).
    Text(String),
    /// A list of blocks (a JSON array). An empty list is "no content" (OpenAI's `null` on an
    /// assistant turn that only calls tools).
    Parts(Vec<Part>),
}

impl Default for Content {
    fn default() -> Self {
        Content::Parts(Vec::new())
    }
}

impl Content {
    /// The text of every text block, joined (no separator); thinking and refusals are not text.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Content::Text(t) => Cow::Borrowed(t),
            Content::Parts(parts) => {
                let mut texts = parts.iter().filter_map(|p| match p {
                    Part::Text { text, .. } => Some(text.as_str()),
                    _ => None,
                });
                match (texts.next(), texts.next()) {
                    (None, _) => Cow::Borrowed(""),
                    (Some(one), None) => Cow::Borrowed(one),
                    (Some(a), Some(b)) => {
                        let mut all = String::from(a);
                        all.push_str(b);
                        texts.for_each(|t| all.push_str(t));
                        Cow::Owned(all)
                    }
                }
            }
        }
    }

    /// The blocks (a text content is one text block).
    pub fn parts(&self) -> Cow<'_, [Part]> {
        match self {
            Content::Text(t) => Cow::Owned(vec![Part::text(t.clone())]),
            Content::Parts(parts) => Cow::Borrowed(parts),
        }
    }

    /// Whether there is nothing in it (an empty text or no blocks).
    pub fn is_empty(&self) -> bool {
        match self {
            Content::Text(t) => t.is_empty(),
            Content::Parts(p) => p.is_empty(),
        }
    }

    /// The refusal block's text, if there is one.
    pub fn refusal(&self) -> Option<&str> {
        self.find(|p| match p {
            Part::Refusal { refusal } => Some(refusal.as_str()),
            _ => None,
        })
    }

    /// The first thinking block's text, if there is one.
    pub fn thinking(&self) -> Option<&str> {
        self.find(|p| match p {
            Part::Thinking { thinking, .. } => Some(thinking.as_str()),
            _ => None,
        })
    }

    fn find<'a>(&'a self, f: impl Fn(&'a Part) -> Option<&'a str>) -> Option<&'a str> {
        match self {
            Content::Text(_) => None,
            Content::Parts(parts) => parts.iter().find_map(f),
        }
    }

    pub(crate) fn estimated_bytes(&self) -> usize {
        match self {
            Content::Text(t) => t.len(),
            Content::Parts(parts) => parts.iter().map(Part::estimated_bytes).sum(),
        }
    }
}

impl From<String> for Content {
    fn from(s: String) -> Self {
        Content::Text(s)
    }
}

impl From<&str> for Content {
    fn from(s: &str) -> Self {
        Content::Text(s.to_owned())
    }
}

impl From<Vec<Part>> for Content {
    fn from(parts: Vec<Part>) -> Self {
        Content::Parts(parts)
    }
}

/// A function call the model asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ToolCall {
    /// The call's id; the tool message answering it repeats it as `tool_call_id`.
    pub id: String,
    /// The function's name.
    pub name: String,
    /// The arguments as the JSON text the model wrote (OpenAI sends a string; Anthropic's
    /// `input` object is written out as text). Not checked: models write invalid JSON.
    pub arguments: String,
}

impl ToolCall {
    /// A call of `name` with these JSON arguments.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }
}

/// One message of a chat conversation.
///
/// ```
/// use towerguard_llm_core::{Message, Part, Role, ToolCall};
///
/// let asked = Message::user_parts(vec![
///     Part::text("What is in this picture, and how warm is it in Paris?"),
///     Part::image_url("https://example.com/cat.png"),
/// ]);
/// let call = Message::assistant_tool_calls(vec![ToolCall::new(
///     "call_1",
///     "get_weather",
///     r#"{"city":"Paris"}"#,
/// )]);
/// let result = Message::tool_result("call_1", r#"{"celsius":21}"#);
/// assert_eq!(result.role, Role::Tool);
/// assert_eq!(result.tool_call_id.as_deref(), Some("call_1"));
/// # let _ = (asked, call);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// What it says.
    pub content: Content,
    /// An optional participant name (OpenAI `name`; Anthropic has none and drops it).
    pub name: Option<String>,
    /// The tools an assistant turn called.
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool message answers.
    pub tool_call_id: Option<String>,
    /// Whether a tool message reports a failure of the tool (Anthropic `is_error`; OpenAI has
    /// no such flag, so its text is prefixed with `Error: `).
    pub tool_error: bool,
    /// Fields of the message the model does not name, as the wire sent them (e.g. OpenAI's
    /// `annotations` on an answer, `audio` on an assistant turn). The format that read them
    /// writes them back where the model sets no such key.
    pub extra: Map<String, Value>,
}

impl Message {
    /// A message with the given role and content.
    pub fn new(role: Role, content: impl Into<Content>) -> Self {
        Self {
            role,
            content: content.into(),
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            tool_error: false,
            extra: Map::new(),
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<Content>) -> Self {
        Self::new(Role::System, content)
    }

    /// A `developer` message.
    pub fn developer(content: impl Into<Content>) -> Self {
        Self::new(Role::Developer, content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<Content>) -> Self {
        Self::new(Role::User, content)
    }

    /// A `user` message of several blocks (text, images, files).
    pub fn user_parts(parts: Vec<Part>) -> Self {
        Self::new(Role::User, Content::Parts(parts))
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<Content>) -> Self {
        Self::new(Role::Assistant, content)
    }

    /// An `assistant` turn that only calls tools.
    pub fn assistant_tool_calls(calls: Vec<ToolCall>) -> Self {
        let mut m = Self::new(Role::Assistant, Content::default());
        m.tool_calls = calls;
        m
    }

    /// A `tool` message answering the call `tool_call_id`.
    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<Content>) -> Self {
        let mut m = Self::new(Role::Tool, content);
        m.tool_call_id = Some(tool_call_id.into());
        m
    }

    /// Sets the participant name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Marks a tool message as reporting the tool's failure.
    pub fn with_tool_error(mut self, failed: bool) -> Self {
        self.tool_error = failed;
        self
    }

    /// The message's text (its text blocks joined).
    pub fn text(&self) -> Cow<'_, str> {
        self.content.text()
    }

    /// Bytes of prompt this message adds, for token estimates.
    pub(crate) fn estimated_bytes(&self) -> usize {
        self.content.estimated_bytes()
            + self
                .tool_calls
                .iter()
                .map(|c| c.name.len() + c.arguments.len())
                .sum::<usize>()
    }
}
