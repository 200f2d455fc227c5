//! LLM APIs: which one a request speaks, and what its bodies say.
//!
//! [`detect`] names the API from the request head. [`RequestScanner`] and
//! [`ResponseScanner`] then read the bodies incrementally, chunk by chunk, with memory that
//! does not grow with the body: the JSON scanner ([`crate::json`]) reports scalars by path,
//! SSE framing ([`crate::stream::sse`]) streams each event's data into it, and each provider
//! module is only a table from JSON paths to [`Usage`] fields and response facts
//! (`openai` with the OpenAI-compatible quirks, `anthropic`, `gemini`, `bedrock`, `cohere`,
//! `ollama`; `azure` adds Azure's URLs to OpenAI's bodies). Bedrock's eventstream, Gemini's
//! streamed JSON array and Ollama's NDJSON are framed by [`crate::stream`]. Counters are
//! recorded as the provider reported them, with the provider's [`Conventions`];
//! normalisation happens once, in [`Usage::normalize`].

mod anthropic;
pub mod azure;
mod bedrock;
mod cohere;
mod detect;
mod event_memo;
mod gemini;
mod mapping;
mod ollama;
mod openai;
mod request;
mod response;

pub use detect::{detect, operation, path_model};
pub use request::RequestScanner;
pub use response::ResponseScanner;

use crate::json::JsonError;
use crate::stream::eventstream::FrameError;
use crate::stream::SseError;
use crate::usage::{Conventions, Usage};

/// `gen_ai.provider.name`, OpenTelemetry well-known values where they exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
///
/// `openrouter`, `vllm` and `ollama` have no OpenTelemetry well-known value (as of semconv
/// 1.37); they are named after the project, lowercase, as OpenTelemetry advises for others.
pub enum Provider {
    OpenAi,
    AzureOpenAi,
    Anthropic,
    GcpGemini,
    GcpVertexAi,
    AwsBedrock,
    Cohere,
    MistralAi,
    Groq,
    DeepSeek,
    XAi,
    OpenRouter,
    Vllm,
    Ollama,
}

impl Provider {
    /// Every provider, for configuration names.
    pub const ALL: &'static [Provider] = &[
        Provider::OpenAi,
        Provider::AzureOpenAi,
        Provider::Anthropic,
        Provider::GcpGemini,
        Provider::GcpVertexAi,
        Provider::AwsBedrock,
        Provider::Cohere,
        Provider::MistralAi,
        Provider::Groq,
        Provider::DeepSeek,
        Provider::XAi,
        Provider::OpenRouter,
        Provider::Vllm,
        Provider::Ollama,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::AzureOpenAi => "azure.ai.openai",
            Provider::Anthropic => "anthropic",
            Provider::GcpGemini => "gcp.gemini",
            Provider::GcpVertexAi => "gcp.vertex_ai",
            Provider::AwsBedrock => "aws.bedrock",
            Provider::Cohere => "cohere",
            Provider::MistralAi => "mistral_ai",
            Provider::Groq => "groq",
            Provider::DeepSeek => "deepseek",
            Provider::XAi => "x_ai",
            Provider::OpenRouter => "openrouter",
            Provider::Vllm => "vllm",
            Provider::Ollama => "ollama",
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
    /// Gemini `generateContent` / `streamGenerateContent` (Google AI and Vertex AI).
    GeminiGenerateContent,
    /// Bedrock `Converse` / `ConverseStream`.
    BedrockConverse,
    /// Bedrock `InvokeModel` / `InvokeModelWithResponseStream` (Anthropic bodies).
    BedrockInvoke,
    /// Cohere v2 `/v2/chat`.
    CohereChat,
    /// Ollama native `/api/chat`.
    OllamaChat,
    /// Ollama native `/api/generate`.
    OllamaGenerate,
}

impl Api {
    /// Every API, for tests and fuzzers that must cover each one.
    pub const ALL: [Api; 11] = [
        Api::OpenAiChatCompletions,
        Api::OpenAiResponses,
        Api::OpenAiEmbeddings,
        Api::OpenAiCompletions,
        Api::AnthropicMessages,
        Api::GeminiGenerateContent,
        Api::BedrockConverse,
        Api::BedrockInvoke,
        Api::CohereChat,
        Api::OllamaChat,
        Api::OllamaGenerate,
    ];

    /// What this API's counters mean; see [`Usage::normalize`].
    pub fn conventions(self) -> Conventions {
        match self {
            Api::AnthropicMessages | Api::BedrockConverse | Api::BedrockInvoke => {
                Conventions::ANTHROPIC
            }
            Api::GeminiGenerateContent => Conventions::GEMINI,
            _ => Conventions::OPENAI,
        }
    }

    /// OpenAI-style streams whose usage chunk `stream_options.include_usage` controls.
    pub fn has_openai_usage_chunk(self) -> bool {
        matches!(self, Api::OpenAiChatCompletions | Api::OpenAiCompletions)
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

impl Route {
    /// What this route's counters mean: the API's conventions, except where a vendor counts
    /// differently on the same wire format. xAI's chat completions report
    /// `completion_tokens_details.reasoning_tokens` outside `completion_tokens` (its
    /// `total_tokens` is prompt + completion + reasoning) and bill them as output, so the
    /// reasoning is added to the output as for Gemini; read as OpenAI's, it would be unbilled.
    pub fn conventions(self) -> Conventions {
        match (self.provider, self.api) {
            (Provider::XAi, Api::OpenAiChatCompletions) => Conventions {
                reasoning: crate::usage::ReasoningConvention::OutputExcludesReasoning,
                ..Conventions::OPENAI
            },
            _ => self.api.conventions(),
        }
    }
}

/// Why a body could not be read. One enum for the extraction layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error("body is not valid JSON: {0}")]
    Json(#[from] JsonError),
    #[error("event stream framing: {0}")]
    Sse(#[from] SseError),
    #[error("stream framing: {0}")]
    Frame(#[from] FrameError),
    #[error("the stream carried an error message")]
    StreamException,
    #[error("body was empty")]
    Empty,
}

/// Facts read from the request body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFacts {
    pub model: Option<String>,
    pub stream: bool,
    /// The API's max-output-tokens field (`max_tokens`, `max_completion_tokens`,
    /// `max_output_tokens`, Gemini `generationConfig.maxOutputTokens`, Bedrock Converse
    /// `inferenceConfig.maxTokens`, Ollama `options.num_predict`), the last one when repeated.
    pub max_output_tokens: Option<u64>,
    /// How many outputs the request asks for, each up to the max output: OpenAI `n`
    /// (completions: the larger of `n` and `best_of`), Gemini
    /// `generationConfig.candidateCount`. As sent (the estimate bounds it); `None` when absent.
    pub choices: Option<u64>,
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
        Api::AnthropicMessages | Api::BedrockInvoke => anthropic::MESSAGES,
        Api::GeminiGenerateContent => gemini::GENERATE_CONTENT,
        Api::BedrockConverse => bedrock::CONVERSE,
        Api::CohereChat => cohere::CHAT,
        Api::OllamaChat | Api::OllamaGenerate => ollama::NATIVE,
    }
}
