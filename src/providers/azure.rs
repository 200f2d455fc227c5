//! Azure OpenAI: OpenAI's bodies behind Azure's URLs.
//!
//! Azure routes by deployment (`/openai/deployments/{deployment}/chat/completions?api-version=`)
//! and the deployment name, not the model, is what the client names; the pipeline maps it
//! to a model through configuration, so the name is exposed here. The newer v1 routes
//! (`/openai/v1/chat/completions`, `/openai/responses`) carry the model in the body and are
//! recognised by the `/openai/` prefix or an Azure authority.

use super::Api;

/// Authorities of Azure OpenAI and Azure AI Foundry endpoints (without port).
const AZURE_HOST_SUFFIXES: &[&str] = &[
    ".openai.azure.com",
    ".cognitiveservices.azure.com",
    ".services.ai.azure.com",
];

/// The deployment named in an Azure deployment-style path (query string allowed).
pub fn deployment(path: &str) -> Option<&str> {
    let path = super::detect::strip_query(path);
    let rest = path.strip_prefix("/openai/deployments/")?;
    let (name, _) = rest.split_once('/')?;
    (!name.is_empty()).then_some(name)
}

/// The API of a deployment-style path.
pub(crate) fn deployment_api(path: &str) -> Option<Api> {
    let path = super::detect::strip_query(path);
    let rest = path.strip_prefix("/openai/deployments/")?;
    let (name, op) = rest.split_once('/')?;
    if name.is_empty() {
        return None;
    }
    match op.trim_end_matches('/') {
        "chat/completions" => Some(Api::OpenAiChatCompletions),
        "completions" => Some(Api::OpenAiCompletions),
        "embeddings" => Some(Api::OpenAiEmbeddings),
        "responses" => Some(Api::OpenAiResponses),
        _ => None,
    }
}

/// True for an Azure OpenAI authority (port ignored, case-insensitive).
pub fn is_azure_authority(authority: &str) -> bool {
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                host
            } else {
                authority
            }
        });
    let host = host.to_ascii_lowercase();
    AZURE_HOST_SUFFIXES
        .iter()
        .any(|suffix| host.ends_with(suffix))
}
