//! Which API a request speaks, from its path and authority alone.
//!
//! Matching is by path suffix so that OpenAI-compatible servers mounted under a prefix
//! (`/api/v1/chat/completions`) and clients that omit `/v1` are both recognised; the query
//! string is ignored. Azure is recognised by its deployment paths, its `/openai/` prefix or
//! its authority.

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
        Api::OpenAiChatCompletions | Api::OpenAiResponses | Api::AnthropicMessages => {
            Operation::Chat
        }
        Api::OpenAiCompletions => Operation::TextCompletion,
        Api::OpenAiEmbeddings => Operation::Embeddings,
    }
}

/// Detects the API from the request path (query string allowed) and authority.
/// `None` means "not LLM traffic we know": it passes through untouched.
pub fn detect(path: &str, authority: &str) -> Option<Route> {
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
}
