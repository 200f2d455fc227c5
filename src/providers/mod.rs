//! LLM APIs: which one a request speaks, and what its bodies say.
//!
//! [`detect`] names the API from the request head. [`RequestScanner`] and
//! [`ResponseScanner`] then read the bodies incrementally, chunk by chunk, with memory that
//! does not grow with the body: the JSON scanner ([`crate::json`]) reports scalars by path,
//! SSE framing ([`crate::stream::sse`]) streams each event's data into it, and each provider
//! module is only a table from JSON paths to [`Usage`] fields and response facts
//! (`openai`, `anthropic`; `azure` adds Azure's URLs to OpenAI's bodies). Counters are
//! recorded as the provider reported them, with the provider's [`Conventions`];
//! normalisation happens once, in [`Usage::normalize`].

mod anthropic;
pub mod azure;
mod detect;
mod mapping;
mod openai;
mod request;
mod response;

pub use detect::{detect, operation};
pub use request::RequestScanner;
pub use response::ResponseScanner;

use crate::json::JsonError;
use crate::stream::SseError;
use crate::usage::{Conventions, Usage};

/// `gen_ai.provider.name`, OpenTelemetry well-known values where they exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    OpenAi,
    AzureOpenAi,
    Anthropic,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::AzureOpenAi => "azure.ai.openai",
            Provider::Anthropic => "anthropic",
        }
    }
}

/// `gen_ai.operation.name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Chat,
    TextCompletion,
    Embeddings,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
            Operation::TextCompletion => "text_completion",
            Operation::Embeddings => "embeddings",
        }
    }
}

/// The wire format of the bodies, which decides the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    OpenAiChatCompletions,
    OpenAiResponses,
    OpenAiEmbeddings,
    OpenAiCompletions,
    AnthropicMessages,
}

impl Api {
    /// What this API's counters mean; see [`Usage::normalize`].
    pub fn conventions(self) -> Conventions {
        match self {
            Api::AnthropicMessages => Conventions::ANTHROPIC,
            _ => Conventions::OPENAI,
        }
    }
}

/// What a request is, from its head alone. For Azure deployment paths the deployment
/// name is available from [`azure::deployment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub provider: Provider,
    pub operation: Operation,
    pub api: Api,
}

/// Why a body could not be read. One enum for the extraction layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error("body is not valid JSON: {0}")]
    Json(#[from] JsonError),
    #[error("event stream framing: {0}")]
    Sse(#[from] SseError),
    #[error("body was empty")]
    Empty,
}

/// Facts read from the request body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFacts {
    pub model: Option<String>,
    pub stream: bool,
    /// `max_tokens`, `max_completion_tokens` or `max_output_tokens`, whichever came last.
    pub max_output_tokens: Option<u64>,
    /// `stream_options.include_usage` as the client sent it.
    pub include_usage: Option<bool>,
    /// Bytes of request body seen, for prompt-size estimates.
    pub body_bytes: u64,
    /// The body was not a JSON value (or empty); the facts above are whatever was read.
    pub unreadable: bool,
}

/// Facts read from the response body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseFacts {
    pub model: Option<String>,
    pub id: Option<String>,
    /// `finish_reason`, Anthropic `stop_reason`, or the Responses API `status`.
    pub finish_reason: Option<String>,
    pub service_tier: Option<String>,
    /// Raw (still escaped) bytes of generated text and tool arguments seen, for estimating
    /// output tokens when the provider reports no usage.
    pub output_text_bytes: u64,
}

/// What a response scan produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseOutcome {
    pub usage: Usage,
    pub conventions: Conventions,
    pub facts: ResponseFacts,
    /// True when the body could not be read as the API's format (usage is then missing).
    pub unreadable: bool,
    /// The first fault met, if any; present with `unreadable: false` when usage was still
    /// read (say, a stream cut after its usage event).
    pub error: Option<ExtractError>,
}

/// The extractor table of an API's response bodies.
fn response_rules(api: Api) -> &'static [mapping::Rule] {
    match api {
        Api::OpenAiChatCompletions => openai::CHAT_COMPLETIONS,
        Api::OpenAiResponses => openai::RESPONSES,
        Api::OpenAiEmbeddings => openai::EMBEDDINGS,
        Api::OpenAiCompletions => openai::COMPLETIONS,
        Api::AnthropicMessages => anthropic::MESSAGES,
    }
}
