//! LLM APIs: which one a request speaks, and what its bodies say.
//!
//! STUB owned by the extraction work: detection from path/authority, and the incremental
//! request and response scanners built on `json` and `stream`. The signatures below are the
//! contract the pipeline (`meter`) codes against.

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

/// What a request is, from its head alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub provider: Provider,
    pub operation: Operation,
    pub api: Api,
}

/// Detects the API from the request path (query string allowed) and authority.
/// `None` means "not LLM traffic we know": it passes through untouched.
pub fn detect(_path: &str, _authority: &str) -> Option<Route> {
    None
}

/// Facts read from the request body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFacts {
    pub model: Option<String>,
    pub stream: bool,
    pub max_output_tokens: Option<u64>,
    /// `stream_options.include_usage` as the client sent it.
    pub include_usage: Option<bool>,
    /// Bytes of request body seen, for prompt-size estimates.
    pub body_bytes: u64,
}

/// Incremental scanner of a request body; memory does not grow with the body.
pub struct RequestScanner {
    facts: RequestFacts,
}

impl RequestScanner {
    pub fn new(_api: Api) -> Self {
        Self { facts: RequestFacts::default() }
    }
    pub fn feed(&mut self, chunk: &[u8]) {
        self.facts.body_bytes = self.facts.body_bytes.saturating_add(chunk.len() as u64);
    }
    pub fn finish(&mut self) -> RequestFacts {
        self.facts.clone()
    }
}

/// Facts read from the response body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseFacts {
    pub model: Option<String>,
    pub id: Option<String>,
    pub finish_reason: Option<String>,
    pub service_tier: Option<String>,
}

/// What a response scan produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseOutcome {
    pub usage: Usage,
    pub conventions: Conventions,
    pub facts: ResponseFacts,
    /// True when the body could not be read as the API's format (usage is then missing).
    pub unreadable: bool,
}

/// Incremental scanner of a (decompressed) response body: JSON or SSE by content type.
pub struct ResponseScanner {
    api: Api,
}

impl ResponseScanner {
    pub fn new(api: Api, _content_type: Option<&str>) -> Self {
        Self { api }
    }
    pub fn feed(&mut self, _chunk: &[u8]) {}
    pub fn finish(&mut self) -> ResponseOutcome {
        let conventions = match self.api {
            Api::AnthropicMessages => Conventions::ANTHROPIC,
            _ => Conventions::OPENAI,
        };
        ResponseOutcome {
            usage: Usage::default(),
            conventions,
            facts: ResponseFacts::default(),
            unreadable: true,
        }
    }
}
