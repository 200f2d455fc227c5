//! Which API a request speaks, from its path and authority alone.
//!
//! Matching is by path suffix so that OpenAI-compatible servers mounted under a prefix
//! (`/api/v1/chat/completions`) and clients that omit `/v1` are both recognised; the query
//! string is ignored. Azure is recognised by its deployment paths, its `/openai/` prefix or
//! its authority. Gemini and Vertex AI are recognised by `models/{model}:method` paths,
//! Bedrock by `/model/{modelId}/{operation}`, Cohere by `/v2/chat`, Ollama by `/api/chat`
//! and `/api/generate`. OpenAI-compatible vendors share OpenAI's paths and are told apart by
//! their authority (`api.groq.com`, `api.deepseek.com`, ...), and a self-hosted Ollama `/v1`
//! by its port (11434); a server with neither (vLLM) is metered as `openai`, and a `routes`
//! override in the configuration names it.
//! The model of Gemini, Vertex and Bedrock requests is in the path, not the body:
//! [`path_model`] reads it.

use super::{azure, Api, Operation, Provider, Route};

/// The path without query string or fragment, and without a trailing slash.
pub(crate) fn strip_query(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    let path = path.get(..end).unwrap_or(path);
    if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    }
}

fn api_of(path: &str) -> Option<Api> {
    if path.ends_with("/chat/completions") {
        Some(Api::OpenAiChatCompletions)
    } else if path.ends_with("/completions") {
        Some(Api::OpenAiCompletions)
    } else if path.ends_with("/embeddings") {
        Some(Api::OpenAiEmbeddings)
    } else if path.ends_with("/responses") {
        Some(Api::OpenAiResponses)
    } else if path.ends_with("/v1/messages") || path == "/messages" {
        Some(Api::AnthropicMessages)
    } else {
        None
    }
}

/// The operation an API performs (`gen_ai.operation.name`).
pub fn operation(api: Api) -> Operation {
    match api {
        Api::OpenAiChatCompletions
        | Api::OpenAiResponses
        | Api::AnthropicMessages
        | Api::GeminiGenerateContent
        | Api::BedrockConverse
        | Api::BedrockInvoke
        | Api::CohereChat
        | Api::OllamaChat => Operation::Chat,
        Api::OpenAiCompletions | Api::OllamaGenerate => Operation::TextCompletion,
        Api::OpenAiEmbeddings => Operation::Embeddings,
    }
}

/// Longest model id kept from a path.
const MAX_PATH_MODEL_LEN: usize = 256;

/// The host of an authority, lowercase, without port.
fn host(authority: &str) -> String {
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or(authority)
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    host.to_ascii_lowercase()
}

/// OpenAI-compatible vendors by their API host.
fn compatible_vendor(host: &str) -> Option<Provider> {
    Some(match host {
        "api.groq.com" => Provider::Groq,
        "api.deepseek.com" => Provider::DeepSeek,
        "api.mistral.ai" => Provider::MistralAi,
        "api.x.ai" => Provider::XAi,
        "openrouter.ai" => Provider::OpenRouter,
        "api.cohere.com" | "api.cohere.ai" => Provider::Cohere,
        _ => return None,
    })
}

/// Self-hosted OpenAI-compatible servers with a well-known port: Ollama listens on 11434
/// (`ollama.ollama.svc:11434/v1/chat/completions`), so its `/v1` API is named without a
/// `routes` entry. vLLM's default (8000) is too common to mean anything.
fn vendor_by_port(authority: &str) -> Option<Provider> {
    let port = authority.rsplit_once(':').map(|(_, port)| port)?;
    (port == "11434").then_some(Provider::Ollama)
}

/// `.../models/{model}:{method}` (Gemini API and Vertex AI): the model and the method.
fn gemini_method(path: &str) -> Option<(&str, &str)> {
    const MODELS: &[u8] = b"/models/";
    // A byte window, not `rfind(&str)`: the reverse two-way string searcher is about 1 KB of
    // module for this one short path.
    let at = path.as_bytes().windows(MODELS.len()).rposition(|w| w == MODELS)?;
    let rest = path.get(at + MODELS.len()..)?;
    let (model, method) = rest.split_once(':')?;
    (!model.is_empty() && !model.contains('/')).then_some((model, method))
}

/// `/model/{modelId}/{operation}` (Bedrock runtime): the model id and the operation.
fn bedrock_operation(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/model/")?;
    let (model, op) = rest.rsplit_once('/')?;
    (!model.is_empty()).then_some((model, op))
}

/// Google and Bedrock routes, whose model and method are in the path.
fn detect_model_path(path: &str, host: &str) -> Option<Route> {
    if let Some((_, method)) = gemini_method(path) {
        let vertex = path.contains("/projects/") || host.ends_with("aiplatform.googleapis.com");
        let (provider, api) = match method {
            "generateContent" | "streamGenerateContent" if vertex => {
                (Provider::GcpVertexAi, Api::GeminiGenerateContent)
            }
            "generateContent" | "streamGenerateContent" => {
                (Provider::GcpGemini, Api::GeminiGenerateContent)
            }
            "rawPredict" | "streamRawPredict" if path.contains("/publishers/anthropic/") => {
                (Provider::GcpVertexAi, Api::AnthropicMessages)
            }
            _ => return None,
        };
        return Some(Route {
            provider,
            operation: Operation::Chat,
            api,
        });
    }
    let (_, op) = bedrock_operation(path)?;
    let api = match op {
        "converse" | "converse-stream" => Api::BedrockConverse,
        "invoke" | "invoke-with-response-stream" => Api::BedrockInvoke,
        _ => return None,
    };
    Some(Route {
        provider: Provider::AwsBedrock,
        operation: Operation::Chat,
        api,
    })
}

/// The model named by the path, percent-decoded: Gemini / Vertex `models/{model}:method`
/// and Bedrock `/model/{modelId}/...` (ids and ARNs such as
/// `us.anthropic.claude-sonnet-4-20250514-v1:0`). `None` for other paths.
pub fn path_model(path: &str) -> Option<String> {
    let path = strip_query(path);
    let raw = match gemini_method(path) {
        Some((model, _)) => model,
        None => bedrock_operation(path)?.0,
    };
    if raw.len() > MAX_PATH_MODEL_LEN {
        return None;
    }
    let decoded = percent_decode(raw);
    // An ARN's last segment is the model or inference profile id, which is what is priced.
    let model = decoded.rsplit('/').next().unwrap_or(&decoded);
    // Vertex names versions `claude-sonnet-4@20250514`.
    let model = model.split('@').next().unwrap_or(model);
    (!model.is_empty()).then(|| crate::attribution::log_safe(model))
}

/// `%XX` escapes to bytes; malformed escapes are kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detects the API from the request path (query string allowed) and authority.
/// `None` means "not LLM traffic we know": it passes through untouched.
pub fn detect(path: &str, authority: &str) -> Option<Route> {
    let host = host(authority);
    if let Some(route) = detect_model_path(strip_query(path), &host) {
        return Some(route);
    }
    if let Some(route) = detect_native(strip_query(path)) {
        return Some(route);
    }
    if let Some(provider) = compatible_vendor(&host).or_else(|| vendor_by_port(authority)) {
        let api = api_of(strip_query(path))?;
        return Some(Route {
            provider,
            operation: operation(api),
            api,
        });
    }
    detect_openai_or_anthropic(path, authority)
}

/// Cohere v2 chat and Ollama's native API, by path.
fn detect_native(path: &str) -> Option<Route> {
    let (provider, api) = if path.ends_with("/v2/chat") {
        (Provider::Cohere, Api::CohereChat)
    } else if path == "/api/chat" {
        (Provider::Ollama, Api::OllamaChat)
    } else if path == "/api/generate" {
        (Provider::Ollama, Api::OllamaGenerate)
    } else {
        return None;
    };
    Some(Route {
        provider,
        operation: operation(api),
        api,
    })
}

fn detect_openai_or_anthropic(path: &str, authority: &str) -> Option<Route> {
    if let Some(api) = azure::deployment_api(path) {
        return Some(Route {
            provider: Provider::AzureOpenAi,
            operation: operation(api),
            api,
        });
    }
    let path = strip_query(path);
    let api = api_of(path)?;
    let provider = match api {
        Api::AnthropicMessages => Provider::Anthropic,
        _ if path.starts_with("/openai/") || azure::is_azure_authority(authority) => {
            Provider::AzureOpenAi
        }
        _ => Provider::OpenAi,
    };
    Some(Route {
        provider,
        operation: operation(api),
        api,
    })
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;

    fn route(provider: Provider, api: Api) -> Option<Route> {
        Some(Route {
            provider,
            operation: operation(api),
            api,
        })
    }

    #[test]
    fn openai_paths_with_and_without_v1_and_query() {
        let cases = [
            ("/v1/chat/completions", Api::OpenAiChatCompletions),
            ("/chat/completions", Api::OpenAiChatCompletions),
            ("/v1/chat/completions?foo=bar", Api::OpenAiChatCompletions),
            ("/v1/chat/completions/", Api::OpenAiChatCompletions),
            (
                "/api/openai-compatible/v1/chat/completions",
                Api::OpenAiChatCompletions,
            ),
            ("/v1/responses", Api::OpenAiResponses),
            ("/responses?x=1", Api::OpenAiResponses),
            ("/v1/embeddings", Api::OpenAiEmbeddings),
            ("/embeddings", Api::OpenAiEmbeddings),
            ("/v1/completions", Api::OpenAiCompletions),
            ("/completions#frag", Api::OpenAiCompletions),
        ];
        for (path, api) in cases {
            assert_eq!(
                detect(path, "api.openai.com"),
                route(Provider::OpenAi, api),
                "{path}"
            );
        }
    }

    #[test]
    fn operation_names_follow_the_api() {
        assert_eq!(
            detect("/v1/responses", "").unwrap().operation.name(),
            "chat"
        );
        assert_eq!(
            detect("/v1/completions", "").unwrap().operation.name(),
            "text_completion"
        );
        assert_eq!(
            detect("/v1/embeddings", "").unwrap().operation.name(),
            "embeddings"
        );
        assert_eq!(detect("/v1/messages", "").unwrap().operation.name(), "chat");
    }

    #[test]
    fn anthropic_messages() {
        let want = route(Provider::Anthropic, Api::AnthropicMessages);
        assert_eq!(detect("/v1/messages", "api.anthropic.com"), want);
        assert_eq!(
            detect("/v1/messages?beta=true", "api.anthropic.com:443"),
            want
        );
        assert_eq!(
            detect("/v1/messages/count_tokens", "api.anthropic.com"),
            None
        );
        assert_eq!(detect("/v1/messages/batches", "api.anthropic.com"), None);
        assert_eq!(
            detect("/v1/messages", "api.anthropic.com")
                .unwrap()
                .provider
                .name(),
            "anthropic"
        );
    }

    #[test]
    fn azure_deployments_expose_the_deployment() {
        let path = "/openai/deployments/gpt-5-nano/chat/completions?api-version=2024-12-01-preview";
        let r = detect(path, "resource-name.cognitiveservices.azure.com").unwrap();
        assert_eq!(
            r,
            route(Provider::AzureOpenAi, Api::OpenAiChatCompletions).unwrap()
        );
        assert_eq!(r.provider.name(), "azure.ai.openai");
        assert_eq!(azure::deployment(path), Some("gpt-5-nano"));
        assert_eq!(
            detect("/openai/deployments/emb/embeddings?api-version=1", "x"),
            route(Provider::AzureOpenAi, Api::OpenAiEmbeddings)
        );
        assert_eq!(
            detect("/openai/deployments/davinci/completions", "x"),
            route(Provider::AzureOpenAi, Api::OpenAiCompletions)
        );
        assert_eq!(
            detect("/openai/deployments//chat/completions", "x"),
            route(Provider::AzureOpenAi, Api::OpenAiChatCompletions)
        );
        assert_eq!(azure::deployment("/v1/chat/completions"), None);
        assert_eq!(
            detect("/openai/deployments/d/images/generations", "x"),
            None
        );
    }

    #[test]
    fn azure_v1_routes_by_prefix_or_authority() {
        let want = route(Provider::AzureOpenAi, Api::OpenAiChatCompletions);
        assert_eq!(detect("/openai/v1/chat/completions", "gateway.local"), want);
        assert_eq!(
            detect("/v1/chat/completions", "my.openai.azure.com:443"),
            want
        );
        assert_eq!(detect("/v1/chat/completions", "MY.OPENAI.AZURE.COM"), want);
        assert_eq!(
            detect(
                "/openai/responses?api-version=preview",
                "x.openai.azure.com"
            ),
            route(Provider::AzureOpenAi, Api::OpenAiResponses)
        );
    }

    #[test]
    fn ollama_v1_is_known_by_its_port() {
        for authority in ["ollama.ollama.svc:11434", "127.0.0.1:11434", "[::1]:11434"] {
            assert_eq!(
                detect("/v1/chat/completions", authority),
                route(Provider::Ollama, Api::OpenAiChatCompletions),
                "{authority}"
            );
        }
        assert_eq!(detect("/v1/embeddings", "ollama:11434"), route(Provider::Ollama, Api::OpenAiEmbeddings));
        // Native paths keep their own API; other ports and hosts are not Ollama.
        assert_eq!(detect("/api/chat", "ollama:11434"), route(Provider::Ollama, Api::OllamaChat));
        assert_eq!(detect("/v1/chat/completions", "vllm:8000"), route(Provider::OpenAi, Api::OpenAiChatCompletions));
        assert_eq!(detect("/v1/chat/completions", "host:114340"), route(Provider::OpenAi, Api::OpenAiChatCompletions));
        assert_eq!(detect("/healthz", "ollama:11434"), None);
    }

    #[test]
    fn other_paths_are_not_llm_traffic() {
        for path in [
            "/",
            "",
            "/v1/models",
            "/v1/images/generations",
            "/v1/audio/transcriptions",
            "/healthz",
            "/v1/responses/resp_123",
        ] {
            assert_eq!(detect(path, "api.openai.com"), None, "{path}");
        }
    }

    #[test]
    fn gemini_method_takes_the_last_models_segment() {
        assert_eq!(gemini_method("/v1beta/models/gemini-2.0-flash:generateContent"), Some(("gemini-2.0-flash", "generateContent")));
        assert_eq!(
            gemini_method("/v1/projects/p/locations/l/publishers/google/models/gemini-pro:streamGenerateContent"),
            Some(("gemini-pro", "streamGenerateContent"))
        );
        assert_eq!(gemini_method("/models/a/models/b:x/y"), Some(("b", "x/y")));
        assert_eq!(gemini_method("/models/:x"), None);
        assert_eq!(gemini_method("/models/a/b:x"), None);
        assert_eq!(gemini_method("/models"), None);
        assert_eq!(gemini_method("/modelsx/a:b"), None);
    }
}
