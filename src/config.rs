//! The plugin configuration: parsed once at configure time, read-only afterwards.
//!
//! The configuration is JSON. `{}` and an empty byte string are valid and mean "detect the
//! provider from the path, use the built-in prices and the default attribution headers".
//! Every object rejects unknown fields, and every error names the field path (for example
//! `attribution.customer_header: expected a string, got a number`), because a configuration
//! mistake must fail the load loudly (the shipped configs use `FAIL_RELOAD`) instead of
//! silently metering with defaults.
//!
//! Parsing is two-layered on purpose: [`fields`] fixes the shape of each object (its known
//! keys, every value held as a raw `serde_json::Value`, unknown keys rejected); small typed
//! readers then convert each field knowing its path. serde alone reports *what* is wrong but
//! not *where*, and the field path is what an operator needs. The `prices` section is read
//! the same way by `pricing::PriceOverrides::from_map`, whose errors carry their paths.
//!
//! The [`Config`] also owns the [`PriceTable`], built once here so that no request pays for it.
//!
//! One field is never turned into a `Value`: `prices.litellm`, a LiteLLM price list that can be
//! the whole 3.4 MB community file. As a `Value` tree it would cost several times its size in
//! the VM's linear memory (which never shrinks; natively the tree is 10 MiB), so the top level
//! and the `prices` object are read by small visitors that hand that one member to
//! [`LiteLlmSeed`], which imports it in the same pass, and every other member to `Value`.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::pricing::{json_kind, only_objects, unknown_field_message, LiteLlmSeed, PriceOverrides, PriceTable, PricingError};
use crate::providers::{Api, Operation, Provider, Route};
use crate::retry::{RetryRule, RetrySource};

/// Default header carrying the feature (product area) a request is billed to.
pub const DEFAULT_FEATURE_HEADER: &str = "x-llm-feature";
/// Default header carrying the customer (tenant) a request is billed to.
pub const DEFAULT_CUSTOMER_HEADER: &str = "x-llm-customer";
/// Default header carrying the end user; never used as a metric label.
pub const DEFAULT_USER_HEADER: &str = "x-llm-user";
/// Attribution value used when a header is absent or empty.
pub const DEFAULT_ATTRIBUTION_VALUE: &str = "unknown";
/// Default bound on the decompressed size of one response body (16 MiB).
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: u64 = 16 * 1024 * 1024;
/// Default cap on distinct label values per dimension per VM.
pub const DEFAULT_MAX_LABEL_VALUES: u64 = 100;
/// Upper bound accepted for `metrics.max_label_values`: the guard keeps every admitted value
/// in memory, so the cap is also a memory bound.
pub const MAX_MAX_LABEL_VALUES: u64 = 100_000;
/// Longest accepted attribution default value; metric label values are capped at 64 too.
pub const MAX_DEFAULT_VALUE_LEN: usize = 64;
/// Default bound on a request body the filter holds back to cap, inject or reserve (768 KiB).
/// Envoy answers 413 when a held body passes the listener's `per_connection_buffer_limit_bytes`
/// (1 MiB by default) before the filter can give up and let it stream, so the default stays a
/// read's margin below that; raise both together.
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: u64 = 768 * 1024;

/// A configuration the filter refused to load.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The bytes are not JSON (or not UTF-8).
    #[error("configuration is not valid JSON: {0}")]
    Syntax(String),
    /// A field has the wrong type, an invalid value, or is unknown.
    #[error("{path}: {message}")]
    Field { path: String, message: String },
}

impl ConfigError {
    fn field(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Field { path: path.into(), message: message.into() }
    }

    /// The field path the error is about (`None` for syntax errors).
    pub fn path(&self) -> Option<&str> {
        match self {
            ConfigError::Syntax(_) => None,
            ConfigError::Field { path, .. } => Some(path),
        }
    }
}

/// Which headers carry attribution, and the value used when one is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributionConfig {
    /// Lowercase header name.
    pub feature_header: String,
    /// Lowercase header name.
    pub customer_header: String,
    /// Lowercase header name.
    pub user_header: String,
    pub default_value: String,
    /// Where each dimension is read from, tried in order; the first non-blank value wins. An
    /// empty list means "the dimension's header" (`*_header`). A list without a `header`
    /// source makes the dimension unforgeable by clients.
    pub feature_from: Vec<IdentitySource>,
    pub customer_from: Vec<IdentitySource>,
    pub user_from: Vec<IdentitySource>,
    /// Remove every attribution header (the `*_header` names and each `header` source) from
    /// metered requests before they go upstream.
    pub strip_headers: bool,
    /// When set, a salted hash of the request's API key is published as `llm.api_key_id`.
    pub api_key_salt: Option<String>,
}

/// One place an attribution value can be read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// A request header (lowercase name). Forgeable unless an earlier filter overwrites it.
    Header(String),
    /// A host property path, e.g. `metadata.filter_metadata.<namespace>.<key>...` for dynamic
    /// metadata written by an earlier filter (`jwt_claim` and `metadata` sources become this).
    Property(Vec<String>),
}

/// The dynamic-metadata namespace Envoy's `jwt_authn` filter writes the JWT payload under.
pub const JWT_AUTHN_NAMESPACE: &str = "envoy.filters.http.jwt_authn";
/// Default `payload_in_metadata` key assumed for `jwt_claim` sources.
pub const DEFAULT_JWT_PAYLOAD_KEY: &str = "jwt_payload";
/// Most sources accepted per dimension; each costs a host call per request in the worst case.
pub const MAX_IDENTITY_SOURCES: usize = 8;

impl Default for AttributionConfig {
    fn default() -> Self {
        Self {
            feature_header: DEFAULT_FEATURE_HEADER.to_string(),
            customer_header: DEFAULT_CUSTOMER_HEADER.to_string(),
            user_header: DEFAULT_USER_HEADER.to_string(),
            default_value: DEFAULT_ATTRIBUTION_VALUE.to_string(),
            feature_from: Vec::new(),
            customer_from: Vec::new(),
            user_from: Vec::new(),
            strip_headers: false,
            api_key_salt: None,
        }
    }
}

/// Metric options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Distinct values admitted per label dimension before new ones become `other`.
    pub max_label_values: u64,
    /// Add the user (`attribution.user_header`) as a `user` label to the attributed metrics.
    /// Off by default: user identity is unbounded and personal, and belongs in access logs.
    pub user_label: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { max_label_values: DEFAULT_MAX_LABEL_VALUES, user_label: false }
    }
}

/// A per-route override: requests whose path starts with `path_prefix` (and, if given, whose
/// authority matches) are metered as `api`/`provider` instead of what detection says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteOverride {
    pub path_prefix: String,
    /// Lowercase host without port; `None` matches any authority.
    pub authority: Option<String>,
    pub provider: Option<Provider>,
    pub api: Option<Api>,
}

/// The configured names of APIs, as written in `routes[].api`.
pub const API_NAMES: &[(&str, Api)] = &[
    ("openai.chat_completions", Api::OpenAiChatCompletions),
    ("openai.responses", Api::OpenAiResponses),
    ("openai.embeddings", Api::OpenAiEmbeddings),
    ("openai.completions", Api::OpenAiCompletions),
    ("anthropic.messages", Api::AnthropicMessages),
    ("gemini.generate_content", Api::GeminiGenerateContent),
    ("bedrock.converse", Api::BedrockConverse),
    ("bedrock.invoke", Api::BedrockInvoke),
    ("cohere.chat", Api::CohereChat),
    ("ollama.chat", Api::OllamaChat),
    ("ollama.generate", Api::OllamaGenerate),
];

/// The providers accepted in `routes[].provider`, by their `gen_ai.provider.name`.
pub const PROVIDERS: &[Provider] = Provider::ALL;

/// The provider and operation an API implies when a route names only the API.
pub fn api_defaults(api: Api) -> (Provider, Operation) {
    match api {
        Api::OpenAiChatCompletions | Api::OpenAiResponses => (Provider::OpenAi, Operation::Chat),
        Api::OpenAiEmbeddings => (Provider::OpenAi, Operation::Embeddings),
        Api::OpenAiCompletions => (Provider::OpenAi, Operation::TextCompletion),
        Api::AnthropicMessages => (Provider::Anthropic, Operation::Chat),
        Api::GeminiGenerateContent => (Provider::GcpGemini, Operation::Chat),
        Api::BedrockConverse | Api::BedrockInvoke => (Provider::AwsBedrock, Operation::Chat),
        Api::CohereChat => (Provider::Cohere, Operation::Chat),
        Api::OllamaChat => (Provider::Ollama, Operation::Chat),
        Api::OllamaGenerate => (Provider::Ollama, Operation::TextCompletion),
    }
}

impl RouteOverride {
    /// Whether this override applies to a request.
    pub fn matches(&self, path: &str, authority: &str) -> bool {
        if !path.starts_with(self.path_prefix.as_str()) {
            return false;
        }
        match &self.authority {
            None => true,
            Some(want) => host_of(authority).eq_ignore_ascii_case(want),
        }
    }

    /// The route for a matching request. `detected` is what path detection found, used when
    /// the override names only a provider.
    pub fn apply(&self, detected: Option<Route>) -> Option<Route> {
        match (self.api, detected) {
            (Some(api), _) => {
                let (provider, operation) = api_defaults(api);
                Some(Route { provider: self.provider.unwrap_or(provider), operation, api })
            }
            (None, Some(route)) => Some(Route { provider: self.provider.unwrap_or(route.provider), ..route }),
            (None, None) => None,
        }
    }
}

/// Strips a port from an authority (`host:443` -> `host`, `[::1]:80` -> `[::1]`).
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or(authority);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// Default `prices.litellm_source.interval_seconds`: the community list changes a few times a
/// day at most, and each refresh re-imports the whole file in every worker.
pub const DEFAULT_PRICE_LIST_INTERVAL_SECONDS: u64 = 3600;
/// Default `prices.litellm_source.timeout_ms`: a 3.4 MB body from inside the cluster.
pub const DEFAULT_PRICE_LIST_TIMEOUT_MS: u64 = 10_000;

/// An HTTP endpoint serving a LiteLLM price list, fetched through an Envoy cluster. The field
/// names are those of `budget.limits_source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceListSource {
    pub cluster: String,
    pub path: String,
    /// `:authority` of the fetch; defaults to the cluster name.
    pub authority: String,
    /// Seconds between successful fetches.
    pub interval_seconds: u64,
    pub timeout_ms: u64,
}

/// The `prices` section, as far as it is kept after the table is built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PricesConfig {
    /// `prices.models` and `prices.aliases`, applied over built-in and imported prices (and
    /// re-applied over every fetched list).
    pub overrides: PriceOverrides,
    /// Priced models imported from an inline `prices.litellm` (0 without one).
    pub litellm_models: u64,
    /// `prices.litellm_source`: a LiteLLM list fetched at start and on a timer.
    pub litellm_source: Option<PriceListSource>,
}

/// The loaded plugin configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub attribution: AttributionConfig,
    /// What the `prices` section says beyond the table built from it.
    pub prices: PricesConfig,
    /// Azure OpenAI deployment name -> model, for pricing when neither body names a model.
    pub azure_deployments: Deployments,
    /// Per-route overrides; the longest matching `path_prefix` wins.
    pub routes: Vec<RouteOverride>,
    /// Bound on the decompressed size of one compressed response body.
    pub max_decompressed_bytes: u64,
    /// Remove `accept-encoding` from metered requests so upstreams answer uncompressed.
    pub strip_accept_encoding: bool,
    pub metrics: MetricsConfig,
    /// The built-in retry headers followed by those configured in `retry_headers`.
    pub retry_rules: Vec<RetryRule>,
    /// Budgets, output caps and pulled limits (`budget` section; see `docs/budgets.md`).
    pub budget: crate::budget::BudgetConfig,
    /// Largest request body held back for admission (caps, usage injection, reservation);
    /// a larger body streams through unchanged and unreserved, and is counted.
    pub max_request_body_bytes: u64,
    /// Add `stream_options.include_usage` to OpenAI chat-completion streams that do not ask for
    /// it, so that every stream reports usage (the client's stream is restored on the way back).
    pub inject_stream_usage: bool,
    /// Built-in prices, then an inline LiteLLM import, then overrides, built once at load and
    /// shared (not copied) with every exchange, which takes it when the request starts (see
    /// [`Config::price_table`]). The shell swaps in a new table in place when it fetches
    /// `prices.litellm_source` ([`Config::set_price_table`]) rather than copying the whole
    /// configuration around it: that copy was about 4.5 KB of wasm.
    price_table: RefCell<Arc<PriceTable>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            attribution: AttributionConfig::default(),
            prices: PricesConfig::default(),
            azure_deployments: Deployments::default(),
            routes: Vec::new(),
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            strip_accept_encoding: true,
            metrics: MetricsConfig::default(),
            retry_rules: crate::retry::builtin_rules(),
            budget: crate::budget::BudgetConfig::default(),
            max_request_body_bytes: DEFAULT_MAX_REQUEST_BODY_BYTES,
            inject_stream_usage: true,
            price_table: RefCell::new(Arc::new(PriceTable::builtin())),
        }
    }
}

// The accepted keys of each object, in the order `fields` returns their values. Objects are
// walked by hand rather than through serde derives (`deny_unknown_fields` on structs of raw
// `Value`s): each derive instantiated serde's whole map visitor once per struct, about 25 KB of
// the module for code that runs once per configuration load.

const CONFIG_FIELDS: [&str; 11] = [
    "attribution",
    "prices",
    "azure_deployments",
    "routes",
    "max_decompressed_bytes",
    "strip_accept_encoding",
    "metrics",
    "retry_headers",
    "budget",
    "max_request_body_bytes",
    "inject_stream_usage",
];
const ATTRIBUTION_FIELDS: [&str; 9] = [
    "feature_header",
    "customer_header",
    "user_header",
    "default_value",
    "feature_from",
    "customer_from",
    "user_from",
    "strip_headers",
    "api_key_salt",
];
const SOURCE_FIELDS: [&str; 5] = ["header", "jwt_claim", "payload_in_metadata", "metadata", "property"];
const METRICS_FIELDS: [&str; 2] = ["max_label_values", "user_label"];
const RETRY_HEADER_FIELDS: [&str; 3] = ["header", "min_value", "source"];
const ROUTE_FIELDS: [&str; 4] = ["path_prefix", "authority", "provider", "api"];
const PRICES_FIELDS: [&str; 4] = ["models", "aliases", "litellm", "litellm_source"];
const PRICE_LIST_SOURCE_FIELDS: [&str; 5] = ["cluster", "path", "authority", "interval_seconds", "timeout_ms"];

impl Config {
    /// Parses and validates the plugin configuration.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Config::default());
        }
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            let value: Value =
                serde_json::from_slice(bytes).map_err(|e| ConfigError::Syntax(e.to_string()))?;
            return Err(type_error("configuration", "an object", &value));
        }
        // One pass over the bytes (see the module docs); `inside` names the member being read,
        // so that an error from the LiteLLM import or a non-object `prices` names its field.
        let inside = Cell::new(None);
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let top = TopSeed { inside: &inside }
            .deserialize(&mut deserializer)
            .and_then(|top| deserializer.end().map(|()| top))
            .map_err(|e| match inside.get() {
                Some(field) => ConfigError::field(field, e.to_string()),
                None => ConfigError::Syntax(e.to_string()),
            })?;
        let value = Value::Object(top.rest);
        // `prices` was taken apart while parsing; its slot here is always empty.
        let [attribution_v, _prices, azure_deployments, routes_v, max_decompressed_bytes, strip_accept_encoding, metrics, retry_headers_v, budget_v, max_request_body_bytes, inject_stream_usage] =
            fields(&value, "", &CONFIG_FIELDS)?;
        let mut config = Config::default();
        if let Some(v) = attribution_v {
            config.attribution = attribution(v)?;
        }
        if let Some(members) = top.prices {
            let (prices, table) = prices(members)?;
            config.prices = prices;
            config.price_table = RefCell::new(Arc::new(table));
        }
        if let Some(v) = azure_deployments {
            config.azure_deployments = deployments(v)?;
        }
        if let Some(v) = routes_v {
            config.routes = routes(v)?;
        }
        if let Some(v) = max_decompressed_bytes {
            config.max_decompressed_bytes = positive(v, "max_decompressed_bytes")?;
        }
        if let Some(v) = strip_accept_encoding {
            config.strip_accept_encoding = boolean(v, "strip_accept_encoding")?;
        }
        if let Some(v) = metrics {
            let [max_label_values, user_label] = fields(v, "metrics", &METRICS_FIELDS)?;
            if let Some(v) = max_label_values {
                let n = positive(v, "metrics.max_label_values")?;
                if n > MAX_MAX_LABEL_VALUES {
                    return Err(ConfigError::field(
                        "metrics.max_label_values",
                        format!("must be at most {MAX_MAX_LABEL_VALUES}"),
                    ));
                }
                config.metrics.max_label_values = n;
            }
            if let Some(v) = user_label {
                config.metrics.user_label = boolean(v, "metrics.user_label")?;
            }
        }
        if let Some(v) = retry_headers_v {
            config.retry_rules.extend(retry_headers(v)?);
        }
        if let Some(v) = budget_v {
            config.budget = budget(v)?;
        }
        if let Some(v) = max_request_body_bytes {
            config.max_request_body_bytes = positive(v, "max_request_body_bytes")?;
        }
        if let Some(v) = inject_stream_usage {
            config.inject_stream_usage = boolean(v, "inject_stream_usage")?;
        }
        Ok(config)
    }

    /// The override for a request, if any: the longest matching prefix wins, so a specific
    /// route can refine a broad one regardless of order.
    pub fn route_override(&self, path: &str, authority: &str) -> Option<&RouteOverride> {
        self.routes
            .iter()
            .filter(|r| r.matches(path, authority))
            .max_by_key(|r| r.path_prefix.len())
    }
}

impl Config {
    /// The price table in effect. Exchanges keep the one they started with, so a table swapped
    /// in mid-request never changes the price of a request already under way.
    pub fn price_table(&self) -> Arc<PriceTable> {
        match self.price_table.try_borrow() {
            Ok(table) => Arc::clone(&table),
            // Only `set_price_table` borrows mutably, and it calls nothing while it does.
            Err(_) => Arc::new(PriceTable::builtin()),
        }
    }

    /// Replaces the price table (a fetched `prices.litellm_source` list, built with
    /// [`Config::price_table_with_litellm`]). Returns false if the table is borrowed, which a
    /// single-threaded VM never sees.
    pub fn set_price_table(&self, table: PriceTable) -> bool {
        match self.price_table.try_borrow_mut() {
            Ok(mut slot) => {
                *slot = Arc::new(table);
                true
            }
            Err(_) => false,
        }
    }

    /// The price table for a fetched LiteLLM list (`prices.litellm_source`): built-in prices,
    /// then `body`, then this configuration's overrides -- the precedence of an inline
    /// `prices.litellm`. Also returns how many models the list priced. On error the caller
    /// keeps its current table.
    pub fn price_table_with_litellm(&self, body: &[u8]) -> Result<(PriceTable, u64), ConfigError> {
        let field = "prices.litellm_source";
        let import = PriceTable::import_litellm(body).map_err(|e| pricing_error(e, field))?;
        let imported = u64::try_from(import.len()).unwrap_or(u64::MAX);
        let table = PriceTable::layered(Some(import), &self.prices.overrides).map_err(|e| pricing_error(e, field))?;
        Ok((table, imported))
    }
}

/// The top level as read in one pass: `prices` apart (it may hold a large LiteLLM list), every
/// other member as a `Value` for the typed readers.
#[derive(Default)]
struct TopLevel {
    rest: Map<String, Value>,
    /// `None` when absent or `null`.
    prices: Option<PricesMembers>,
}

/// The `prices` object with `litellm` already imported.
#[derive(Default)]
struct PricesMembers {
    rest: Map<String, Value>,
    litellm: Option<PriceTable>,
}

/// Reads the top-level object (the caller has checked that it is one).
struct TopSeed<'a> {
    inside: &'a Cell<Option<&'static str>>,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = TopLevel;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<TopLevel, D::Error> {
        // `deserialize_any` with every other value refused by hand: `deserialize_map` would
        // word a wrong type through serde's `invalid_type` (see `pricing::only_objects`).
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = TopLevel;
    fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str("an object")
    }
    only_objects!("an object");
    fn visit_unit<E: serde::de::Error>(self) -> Result<TopLevel, E> {
        Err(crate::pricing::wrong_type("an object", "null"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
        let mut top = TopLevel::default();
        // A repeated key keeps its last value, as a `Value` map would.
        while let Some(key) = map.next_key::<String>()? {
            if key == "prices" {
                self.inside.set(Some("prices"));
                top.prices = map.next_value_seed(PricesSeed { inside: self.inside })?;
                self.inside.set(None);
            } else {
                let value = map.next_value::<Value>()?;
                top.rest.insert(key, value);
            }
        }
        Ok(top)
    }
}

/// Reads `prices`: `null` is absent, an object is split, anything else is a type error.
struct PricesSeed<'a> {
    inside: &'a Cell<Option<&'static str>>,
}

impl<'de> DeserializeSeed<'de> for PricesSeed<'_> {
    type Value = Option<PricesMembers>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<PricesMembers>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PricesSeed<'_> {
    type Value = Option<PricesMembers>;
    fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str("an object")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Option<PricesMembers>, E> {
        Ok(None)
    }
    only_objects!("an object");
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<PricesMembers>, A::Error> {
        let mut members = PricesMembers::default();
        while let Some(key) = map.next_key::<String>()? {
            if key == "litellm" {
                self.inside.set(Some("prices.litellm"));
                members.litellm = map.next_value_seed(LiteLlmSeed)?;
                self.inside.set(Some("prices"));
            } else {
                let value = map.next_value::<Value>()?;
                members.rest.insert(key, value);
            }
        }
        Ok(Some(members))
    }
}

/// The `prices` section: overrides, an inline LiteLLM list, a fetched one; and the table they
/// build (built-in < LiteLLM < overrides).
fn prices(members: PricesMembers) -> Result<(PricesConfig, PriceTable), ConfigError> {
    let PricesMembers { rest, litellm: import } = members;
    let rest = Value::Object(rest);
    // `litellm` was imported while parsing; its slot here is always empty.
    let [models, aliases, _litellm, litellm_source] = fields(&rest, "prices", &PRICES_FIELDS)?;
    let overrides = PriceOverrides::from_parts(models, aliases).map_err(|e| pricing_error(e, "prices"))?;
    let litellm_models = import.as_ref().map_or(0, |t| u64::try_from(t.len()).unwrap_or(u64::MAX));
    let table = PriceTable::layered(import, &overrides).map_err(|e| pricing_error(e, "prices"))?;
    let litellm_source = match litellm_source {
        Some(v) => Some(price_list_source(v, "prices.litellm_source")?),
        None => None,
    };
    Ok((PricesConfig { overrides, litellm_models, litellm_source }, table))
}

/// A pricing error as a field error. Override errors carry their own path
/// (`prices.models.x.input`); an import error is about the list, named by `list_field`.
fn pricing_error(e: PricingError, list_field: &str) -> ConfigError {
    match &e {
        PricingError::InvalidPrice { field, .. }
        | PricingError::MissingField { field }
        | PricingError::UnknownAliasTarget { field, .. }
        | PricingError::InvalidOverride { field, .. } => {
            let shown = e.to_string();
            let message = shown.strip_prefix(&format!("{field}: ")).unwrap_or(&shown).to_string();
            ConfigError::field(field.clone(), message)
        }
        PricingError::LiteLlm(_) => ConfigError::field(list_field, e.to_string()),
    }
}

/// `prices.litellm_source`, with the fields and limits of `budget.limits_source` (a longer
/// default interval and timeout: the list is megabytes and changes rarely).
fn price_list_source(v: &Value, path: &str) -> Result<PriceListSource, ConfigError> {
    let [cluster, req_path, authority, interval_seconds, timeout_ms] =
        fields(v, path, &PRICE_LIST_SOURCE_FIELDS)?;
    let field = |k: &str| format!("{path}.{k}");
    let cluster = match cluster {
        Some(v) => non_empty_string(v, &field("cluster"))?,
        None => return Err(ConfigError::field(field("cluster"), "is required")),
    };
    let req_path = match req_path {
        Some(v) => string(v, &field("path"))?,
        None => return Err(ConfigError::field(field("path"), "is required")),
    };
    if !req_path.starts_with('/') {
        return Err(ConfigError::field(field("path"), "must start with `/`"));
    }
    let authority = match authority {
        Some(v) => non_empty_string(v, &field("authority"))?,
        None => cluster.clone(),
    };
    let bounded = |v: Option<&Value>, name: &str, default: u64, max: u64| -> Result<u64, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        let n = positive(v, &field(name))?;
        if n > max {
            return Err(ConfigError::field(field(name), format!("must be at most {max}")));
        }
        Ok(n)
    };
    Ok(PriceListSource {
        cluster,
        path: req_path,
        authority,
        interval_seconds: bounded(interval_seconds, "interval_seconds", DEFAULT_PRICE_LIST_INTERVAL_SECONDS, 86_400)?,
        timeout_ms: bounded(timeout_ms, "timeout_ms", DEFAULT_PRICE_LIST_TIMEOUT_MS, 60_000)?,
    })
}

/// The `budget` section, with the budget layer's error turned into a field error (its message
/// already starts with the field path, e.g. `budget.budgets[0].limit_usd: ...`).
fn budget(v: &Value) -> Result<crate::budget::BudgetConfig, ConfigError> {
    let to_field = |e: crate::budget::BudgetError| {
        let shown = e.to_string();
        match shown.split_once(": ") {
            Some((path, message)) => ConfigError::field(path, message),
            None => ConfigError::field("budget", shown),
        }
    };
    let config = crate::budget::BudgetConfig::from_value(v, "budget").map_err(to_field)?;
    // Attribution has no extra dimensions yet: budgets match customer, feature and user.
    config.validate_dimensions(&[]).map_err(to_field)?;
    Ok(config)
}

fn type_error(path: &str, expected: &str, got: &Value) -> ConfigError {
    ConfigError::field(path, format!("expected {expected}, got {}", json_kind(got)))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The values of an object's keys, in the order of `names`; `null` counts as absent. The
/// errors are a non-object or an unknown key, worded as serde's `deny_unknown_fields` words
/// them, as `pricing::PriceOverrides` does for the `prices` section.
/// The values are borrowed from the parsed document, so an error exit has nothing to drop.
fn fields<'v, const N: usize>(v: &'v Value, path: &str, names: &[&str; N]) -> Result<[Option<&'v Value>; N], ConfigError> {
    let mut out = [None; N];
    take_fields(v, path, names, &mut out)?;
    Ok(out)
}

/// The non-generic body of [`fields`], so that each object shape costs a call, not a copy.
fn take_fields<'v>(v: &'v Value, path: &str, names: &[&str], out: &mut [Option<&'v Value>]) -> Result<(), ConfigError> {
    let Value::Object(map) = v else {
        let shown = if path.is_empty() { "configuration" } else { path };
        return Err(type_error(shown, "an object", v));
    };
    for (key, value) in map {
        let Some(slot) = names.iter().position(|n| n == key).and_then(|i| out.get_mut(i)) else {
            return Err(ConfigError::field(join(path, key), unknown_field_message(key, names)));
        };
        if !value.is_null() {
            *slot = Some(value);
        }
    }
    Ok(())
}

fn string(v: &Value, path: &str) -> Result<String, ConfigError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(type_error(path, "a string", other)),
    }
}

fn boolean(v: &Value, path: &str) -> Result<bool, ConfigError> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => Err(type_error(path, "a boolean", other)),
    }
}

fn positive(v: &Value, path: &str) -> Result<u64, ConfigError> {
    match v.as_u64() {
        Some(0) => Err(ConfigError::field(path, "must be greater than 0")),
        Some(n) => Ok(n),
        None => Err(type_error(path, "a positive integer", v)),
    }
}

/// An HTTP header name: RFC 9110 token characters, stored lowercase because Envoy presents
/// header names lowercase.
fn header_name(v: &Value, path: &str) -> Result<String, ConfigError> {
    let name = string(v, path)?;
    if name.is_empty() {
        return Err(ConfigError::field(path, "must not be empty"));
    }
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !name.bytes().all(token) {
        return Err(ConfigError::field(path, format!("`{name}` is not a valid header name")));
    }
    Ok(name.to_ascii_lowercase())
}

fn attribution(v: &Value) -> Result<AttributionConfig, ConfigError> {
    let [feature_header, customer_header, user_header, default_value, feature_from, customer_from, user_from, strip_headers, api_key_salt] =
        fields(v, "attribution", &ATTRIBUTION_FIELDS)?;
    let header_given = [feature_header.is_some(), customer_header.is_some(), user_header.is_some()];
    let mut out = AttributionConfig::default();
    if let Some(v) = feature_header {
        out.feature_header = header_name(v, "attribution.feature_header")?;
    }
    if let Some(v) = customer_header {
        out.customer_header = header_name(v, "attribution.customer_header")?;
    }
    if let Some(v) = user_header {
        out.user_header = header_name(v, "attribution.user_header")?;
    }
    if let Some(v) = default_value {
        let path = "attribution.default_value";
        let value = string(v, path)?;
        if value.is_empty() {
            return Err(ConfigError::field(path, "must not be empty"));
        }
        if value.len() > MAX_DEFAULT_VALUE_LEN {
            return Err(ConfigError::field(path, format!("must be at most {MAX_DEFAULT_VALUE_LEN} bytes")));
        }
        // The default is used as a metric label as is, so it must already be a clean label.
        if crate::attribution::sanitize_label(&value) != value {
            return Err(ConfigError::field(path, "may only contain A-Z a-z 0-9 _ - : / . @"));
        }
        out.default_value = value;
    }
    let lists = [("feature", feature_from), ("customer", customer_from), ("user", user_from)];
    for ((dimension, list), header_given) in lists.into_iter().zip(header_given) {
        let Some(v) = list else { continue };
        let path = format!("attribution.{dimension}_from");
        if header_given {
            return Err(ConfigError::field(
                path,
                format!("conflicts with attribution.{dimension}_header; use a `header` source instead"),
            ));
        }
        let sources = identity_sources(v, &path)?;
        match dimension {
            "feature" => out.feature_from = sources,
            "customer" => out.customer_from = sources,
            _ => out.user_from = sources,
        }
    }
    if let Some(v) = strip_headers {
        out.strip_headers = boolean(v, "attribution.strip_headers")?;
    }
    if let Some(v) = api_key_salt {
        let path = "attribution.api_key_salt";
        let salt = string(v, path)?;
        // A short salt makes the key id a plain hash that can be matched against guessed keys.
        if salt.len() < 16 {
            return Err(ConfigError::field(path, "must be at least 16 bytes"));
        }
        out.api_key_salt = Some(salt);
    }
    Ok(out)
}

/// Most `retry_headers` entries accepted: each one is a header read per request.
pub const MAX_RETRY_HEADERS: usize = 16;

fn retry_headers(v: &Value) -> Result<Vec<RetryRule>, ConfigError> {
    let Value::Array(items) = v else {
        return Err(type_error("retry_headers", "an array", v));
    };
    if items.len() > MAX_RETRY_HEADERS {
        return Err(ConfigError::field("retry_headers", format!("at most {MAX_RETRY_HEADERS} entries")));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let base = format!("retry_headers[{i}]");
        let [header, min_value, source] = fields(item, &base, &RETRY_HEADER_FIELDS)?;
        let header = match header {
            Some(v) => header_name(v, &format!("{base}.header"))?,
            None => return Err(ConfigError::field(format!("{base}.header"), "is required")),
        };
        let min_value = match min_value {
            Some(v) => positive(v, &format!("{base}.min_value"))?,
            None => 1,
        };
        let source = match source {
            Some(v) => {
                let field = format!("{base}.source");
                let name = string(v, &field)?;
                RetrySource::from_name(&name).ok_or_else(|| {
                    let known: Vec<&str> = RetrySource::ALL.iter().map(|s| s.name()).collect();
                    ConfigError::field(field, format!("unknown source `{name}`, expected one of {}", known.join(", ")))
                })?
            }
            None => RetrySource::Client,
        };
        out.push(RetryRule { header, min_value, source });
    }
    Ok(out)
}

/// A non-empty list of at most [`MAX_IDENTITY_SOURCES`] sources, each an object with exactly
/// one of `header`, `jwt_claim` (with optional `payload_in_metadata`), `metadata`, `property`.
fn identity_sources(v: &Value, path: &str) -> Result<Vec<IdentitySource>, ConfigError> {
    let Value::Array(items) = v else {
        return Err(type_error(path, "an array", v));
    };
    if items.is_empty() {
        return Err(ConfigError::field(path, "must not be empty"));
    }
    if items.len() > MAX_IDENTITY_SOURCES {
        return Err(ConfigError::field(path, format!("at most {MAX_IDENTITY_SOURCES} sources")));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{path}[{i}]");
        let [header, jwt_claim, payload_in_metadata, metadata, property] = fields(item, &path, &SOURCE_FIELDS)?;
        let kinds = [header.is_some(), jwt_claim.is_some(), metadata.is_some(), property.is_some()];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(ConfigError::field(
                path,
                "needs exactly one of `header`, `jwt_claim`, `metadata`, `property`",
            ));
        }
        if payload_in_metadata.is_some() && jwt_claim.is_none() {
            return Err(ConfigError::field(
                format!("{path}.payload_in_metadata"),
                "only applies to a `jwt_claim` source",
            ));
        }
        let source = if let Some(v) = header {
            IdentitySource::Header(header_name(v, &format!("{path}.header"))?)
        } else if let Some(v) = jwt_claim {
            let payload_key = match payload_in_metadata {
                Some(v) => non_empty_string(v, &format!("{path}.payload_in_metadata"))?,
                None => DEFAULT_JWT_PAYLOAD_KEY.to_string(),
            };
            let mut segments = vec![
                "metadata".to_string(),
                "filter_metadata".to_string(),
                JWT_AUTHN_NAMESPACE.to_string(),
                payload_key,
            ];
            segments.extend(string_path(v, &format!("{path}.jwt_claim"))?);
            IdentitySource::Property(segments)
        } else if let Some(v) = metadata {
            let mut segments = vec!["metadata".to_string(), "filter_metadata".to_string()];
            let rest = string_path(v, &format!("{path}.metadata"))?;
            if rest.len() < 2 {
                return Err(ConfigError::field(
                    format!("{path}.metadata"),
                    "needs a namespace and at least one key",
                ));
            }
            segments.extend(rest);
            IdentitySource::Property(segments)
        } else if let Some(v) = property {
            IdentitySource::Property(string_path(v, &format!("{path}.property"))?)
        } else {
            return Err(ConfigError::field(path, "needs a source kind"));
        };
        out.push(source);
    }
    Ok(out)
}

fn non_empty_string(v: &Value, path: &str) -> Result<String, ConfigError> {
    let s = string(v, path)?;
    if s.is_empty() {
        return Err(ConfigError::field(path, "must not be empty"));
    }
    Ok(s)
}

/// A path of property segments: one string (a single segment, which may contain dots, as JWT
/// claim URIs do) or a non-empty array of non-empty strings.
fn string_path(v: &Value, path: &str) -> Result<Vec<String>, ConfigError> {
    match v {
        Value::String(_) => Ok(vec![non_empty_string(v, path)?]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, item)| non_empty_string(item, &format!("{path}[{i}]")))
            .collect(),
        Value::Array(_) => Err(ConfigError::field(path, "must not be empty")),
        other => Err(type_error(path, "a string or an array of strings", other)),
    }
}

/// `azure_deployments`: deployment name -> model, kept sorted by name so that the per-request
/// lookup is a binary search. A sorted vector rather than a B-tree map: read once at load and
/// never changed, and the B-tree's code is several KB of the module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deployments(Vec<(String, String)>);

impl Deployments {
    /// The model a deployment maps to.
    pub fn get(&self, name: &str) -> Option<&String> {
        let i = self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)).ok()?;
        self.0.get(i).map(|(_, model)| model)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds or replaces (a later entry for a name wins, as a map's insert does).
    fn insert(&mut self, name: String, model: String) {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            Ok(i) => {
                if let Some(slot) = self.0.get_mut(i) {
                    slot.1 = model;
                }
            }
            Err(i) => self.0.insert(i, (name, model)),
        }
    }
}

fn deployments(v: &Value) -> Result<Deployments, ConfigError> {
    let Value::Object(map) = v else {
        return Err(type_error("azure_deployments", "an object", v));
    };
    let mut out = Deployments::default();
    for (name, model) in map {
        let path = format!("azure_deployments.{name}");
        if name.is_empty() {
            return Err(ConfigError::field("azure_deployments", "deployment names must not be empty"));
        }
        let model = string(model, &path)?;
        if model.is_empty() {
            return Err(ConfigError::field(path, "model must not be empty"));
        }
        out.insert(name.clone(), model);
    }
    Ok(out)
}

fn routes(v: &Value) -> Result<Vec<RouteOverride>, ConfigError> {
    let Value::Array(items) = v else {
        return Err(type_error("routes", "an array", v));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let base = format!("routes[{i}]");
        let [path_prefix, authority, provider, api] = fields(item, &base, &ROUTE_FIELDS)?;
        let path_field = format!("{base}.path_prefix");
        let path_prefix = match path_prefix {
            Some(v) => string(v, &path_field)?,
            None => return Err(ConfigError::field(path_field, "is required")),
        };
        if !path_prefix.starts_with('/') {
            return Err(ConfigError::field(path_field, "must start with `/`"));
        }
        let authority = match authority {
            Some(v) => {
                let field = format!("{base}.authority");
                let host = string(v, &field)?;
                if host.is_empty() {
                    return Err(ConfigError::field(field, "must not be empty"));
                }
                Some(host_of(&host).to_ascii_lowercase())
            }
            None => None,
        };
        let provider = match provider {
            Some(v) => {
                let field = format!("{base}.provider");
                let name = string(v, &field)?;
                let found = PROVIDERS.iter().copied().find(|p| p.name() == name);
                match found {
                    Some(p) => Some(p),
                    None => {
                        let known: Vec<&str> = PROVIDERS.iter().map(|p| p.name()).collect();
                        return Err(ConfigError::field(
                            field,
                            format!("unknown provider `{name}`, expected one of {}", known.join(", ")),
                        ));
                    }
                }
            }
            None => None,
        };
        let api = match api {
            Some(v) => {
                let field = format!("{base}.api");
                let name = string(v, &field)?;
                match API_NAMES.iter().find(|(n, _)| *n == name) {
                    Some((_, api)) => Some(*api),
                    None => {
                        let known: Vec<&str> = API_NAMES.iter().map(|(n, _)| *n).collect();
                        return Err(ConfigError::field(
                            field,
                            format!("unknown api `{name}`, expected one of {}", known.join(", ")),
                        ));
                    }
                }
            }
            None => None,
        };
        if provider.is_none() && api.is_none() {
            return Err(ConfigError::field(base, "needs `provider`, `api` or both"));
        }
        out.push(RouteOverride { path_prefix, authority, provider, api });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;

    fn err(json: &str) -> ConfigError {
        Config::from_json(json.as_bytes()).expect_err(json)
    }

    #[test]
    fn empty_object_and_empty_bytes_give_the_defaults() {
        for input in ["{}", "", "  \n"] {
            let c = Config::from_json(input.as_bytes()).unwrap();
            assert_eq!(c.attribution, AttributionConfig::default());
            assert_eq!(c.attribution.customer_header, "x-llm-customer");
            assert_eq!(c.attribution.default_value, "unknown");
            assert_eq!(c.max_decompressed_bytes, 16 * 1024 * 1024);
            assert!(c.strip_accept_encoding);
            assert_eq!(c.metrics.max_label_values, 100);
            assert!(c.routes.is_empty() && c.azure_deployments.is_empty());
            assert_eq!(c.prices, PricesConfig::default());
        }
    }

    #[test]
    fn type_errors_name_the_field_path() {
        let e = err(r#"{"attribution": {"customer_header": 5}}"#);
        assert_eq!(e.to_string(), "attribution.customer_header: expected a string, got a number");
        assert_eq!(e.path(), Some("attribution.customer_header"));
        assert_eq!(err(r#"{"strip_accept_encoding": "yes"}"#).path(), Some("strip_accept_encoding"));
        assert_eq!(err(r#"{"metrics": {"max_label_values": -1}}"#).path(), Some("metrics.max_label_values"));
        assert_eq!(err(r#"{"azure_deployments": {"prod": 1}}"#).path(), Some("azure_deployments.prod"));
        assert_eq!(err(r#"{"routes": [{"path_prefix": "/a", "api": 3}]}"#).path(), Some("routes[0].api"));
        assert_eq!(err(r#"{"attribution": []}"#).path(), Some("attribution"));
        assert_eq!(err("[]").path(), Some("configuration"));
    }

    #[test]
    fn unknown_fields_are_rejected_at_every_level() {
        // A valid key next to the unknown one must not be blamed.
        let e = err(r#"{"metrics": {}, "atribution": {}}"#);
        assert_eq!(e.path(), Some("atribution"));
        assert!(e.to_string().contains("unknown field"), "{e}");
        assert_eq!(err(r#"{"attribution": {"team_header": "x"}}"#).path(), Some("attribution.team_header"));
        assert_eq!(err(r#"{"metrics": {"max": 3}}"#).path(), Some("metrics.max"));
        // Worded as serde's `deny_unknown_fields`, as the `prices` section is.
        assert_eq!(
            err(r#"{"metrics": {"max": 3}}"#).to_string(),
            "metrics.max: unknown field `max`, expected `max_label_values` or `user_label`"
        );
        assert_eq!(
            err(r#"{"routes": [{"path": "/"}]}"#).to_string(),
            "routes[0].path: unknown field `path`, expected one of `path_prefix`, `authority`, `provider`, `api`"
        );
        // `null` means "not given", as it did for serde's `Option` fields.
        assert_eq!(Config::from_json(br#"{"metrics": null}"#).unwrap().metrics, MetricsConfig::default());
        assert_eq!(
            err(r#"{"routes": [{"path_prefix": "/a", "api": "anthropic.messages", "x": 1}]}"#).path(),
            Some("routes[0].x")
        );
    }

    #[test]
    fn values_are_validated_and_header_names_lowercased() {
        let c = Config::from_json(br#"{"attribution": {"feature_header": "X-Team-Feature"}}"#).unwrap();
        assert_eq!(c.attribution.feature_header, "x-team-feature");
        assert_eq!(err(r#"{"attribution": {"user_header": ""}}"#).path(), Some("attribution.user_header"));
        assert_eq!(err(r#"{"attribution": {"user_header": "a b"}}"#).path(), Some("attribution.user_header"));
        assert_eq!(err(r#"{"attribution": {"default_value": "a;b"}}"#).path(), Some("attribution.default_value"));
        assert_eq!(err(r#"{"max_decompressed_bytes": 0}"#).path(), Some("max_decompressed_bytes"));
        assert_eq!(err(r#"{"metrics": {"max_label_values": 0}}"#).path(), Some("metrics.max_label_values"));
        assert_eq!(
            err(r#"{"metrics": {"max_label_values": 100001}}"#).path(),
            Some("metrics.max_label_values")
        );
        assert_eq!(err(r#"{"prices": []}"#).path(), Some("prices"));
        assert_eq!(err(r#"{"routes": [{"api": "openai.responses"}]}"#).path(), Some("routes[0].path_prefix"));
        assert_eq!(err(r#"{"routes": [{"path_prefix": "/a"}]}"#).path(), Some("routes[0]"));
        assert_eq!(
            err(r#"{"routes": [{"path_prefix": "/a", "provider": "openia"}]}"#).path(),
            Some("routes[0].provider")
        );
        assert!(matches!(Config::from_json(b"{"), Err(ConfigError::Syntax(_))));
    }

    #[test]
    fn price_override_errors_name_the_field() {
        assert_eq!(err(r#"{"prices": {"models": {"x": {"input": "abc", "output": "1"}}}}"#).path(), Some("prices.models.x.input"));
        assert_eq!(err(r#"{"prices": {"models": {"x": {"input": "1"}}}}"#).path(), Some("prices.models.x.output"));
        assert_eq!(err(r#"{"prices": {"aliases": {"dep": "no-such-model"}}}"#).path(), Some("prices.aliases.dep"));
        assert_eq!(err(r#"{"prices": {"model": {}}}"#).path(), Some("prices.model"));
        let c = Config::from_json(br#"{"prices": {"aliases": {"prod": "gpt-4o"}}}"#).unwrap();
        assert_eq!(c.price_table().resolve("prod").map(|(n, _)| n), Some("gpt-4o"));
        assert!(c.price_table().version().ends_with("+config"));
    }

    /// A LiteLLM list with a model the built-in table does not price, one it does, and one the
    /// configuration overrides.
    const LITELLM: &str = r#"{"sample_spec": {"input_cost_per_token": 0},
        "amazon.titan-text-premier-v1:0": {"input_cost_per_token": 5e-07, "output_cost_per_token": 1.5e-06, "mode": "chat"},
        "amazon.titan-text-express-v1": {"input_cost_per_token": 2e-07, "output_cost_per_token": 6e-07},
        "gpt-4o": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}}"#;

    #[test]
    fn an_inline_litellm_list_sits_between_the_builtin_table_and_the_overrides() {
        let json = format!(
            r#"{{"prices": {{"litellm": {LITELLM},
                "models": {{"amazon.titan-text-express-v1": {{"output": "1"}}}},
                "aliases": {{"prod": "amazon.titan-text-premier-v1:0"}}}}}}"#
        );
        let c = Config::from_json(json.as_bytes()).unwrap();
        assert_eq!(c.prices.litellm_models, 3);
        let rates = |m: &str| c.price_table().resolve(m).map(|(n, p)| (n.to_string(), p.input, p.output));
        assert_eq!(rates("amazon.titan-text-premier-v1:0"), Some(("amazon.titan-text-premier-v1:0".into(), 500_000, 1_500_000)));
        assert_eq!(rates("prod"), rates("amazon.titan-text-premier-v1:0"));
        // The override replaces the output rate and keeps the imported input rate.
        assert_eq!(rates("amazon.titan-text-express-v1"), Some(("amazon.titan-text-express-v1".into(), 200_000, 1_000_000)));
        // The import replaces a built-in price of the same name; other built-ins stay.
        assert_eq!(rates("gpt-4o").map(|r| (r.1, r.2)), Some((1_000_000, 2_000_000)));
        assert!(c.price_table().resolve("claude-sonnet-4-5").is_some());
        assert!(c.price_table().version().ends_with("+litellm+config"), "{}", c.price_table().version());
        // Without the list the same override must give both rates, and the alias has no target.
        assert_eq!(
            err(r#"{"prices": {"models": {"amazon.titan-text-express-v1": {"output": "1"}}}}"#).path(),
            Some("prices.models.amazon.titan-text-express-v1.input")
        );
    }

    #[test]
    fn litellm_errors_name_the_field() {
        assert_eq!(err(r#"{"prices": {"litellm": []}}"#).path(), Some("prices.litellm"));
        // `null` is absent, as everywhere else.
        for json in [r#"{"prices": null}"#, r#"{"prices": {"litellm": null, "litellm_source": null}}"#] {
            assert_eq!(Config::from_json(json.as_bytes()).unwrap().prices, PricesConfig::default(), "{json}");
        }
        assert_eq!(err(r#"{"prices": {"litellm": "x"}}"#).path(), Some("prices.litellm"));
        // A wrong type is worded like every other field's, whatever the value.
        for (json, path, got) in [
            (r#"{"prices": {"litellm": 1.5}}"#, "prices.litellm", "a number"),
            (r#"{"prices": {"litellm": true}}"#, "prices.litellm", "a boolean"),
            (r#"{"prices": {"litellm": [1]}}"#, "prices.litellm", "an array"),
            (r#"{"prices": -2}"#, "prices", "a number"),
            (r#"{"prices": "x"}"#, "prices", "a string"),
        ] {
            let e = err(json);
            assert_eq!(e.path(), Some(path), "{json}");
            assert!(e.to_string().contains(&format!("expected an object, got {got}")), "{json}: {e}");
        }
        assert_eq!(err(r#"{"prices": {"litelm": {}}}"#).path(), Some("prices.litelm"));
        // The list is read in the same pass as the configuration: even its syntax errors name it.
        assert_eq!(err(r#"{"prices": {"litellm": {"m": }}}"#).path(), Some("prices.litellm"));
        assert_eq!(err(r#"{"prices": {"litellm": {"m": {"input_cost_per_token": [}}}}"#).path(), Some("prices.litellm"));
        assert!(matches!(Config::from_json(br#"{"prices": {"litellm": {}}, "metrics": {"#), Err(ConfigError::Syntax(_))));
        assert!(matches!(Config::from_json(br#"{"prices": {}} x"#), Err(ConfigError::Syntax(_))));
        let cases = [
            (r#"{"prices": {"litellm_source": "http://x"}}"#, "prices.litellm_source"),
            (r#"{"prices": {"litellm_source": {"path": "/p"}}}"#, "prices.litellm_source.cluster"),
            (r#"{"prices": {"litellm_source": {"cluster": "c"}}}"#, "prices.litellm_source.path"),
            (r#"{"prices": {"litellm_source": {"cluster": "", "path": "/p"}}}"#, "prices.litellm_source.cluster"),
            (r#"{"prices": {"litellm_source": {"cluster": "c", "path": "p"}}}"#, "prices.litellm_source.path"),
            (r#"{"prices": {"litellm_source": {"cluster": "c", "path": "/p", "interval_seconds": 0}}}"#, "prices.litellm_source.interval_seconds"),
            (r#"{"prices": {"litellm_source": {"cluster": "c", "path": "/p", "timeout_ms": 60001}}}"#, "prices.litellm_source.timeout_ms"),
            (r#"{"prices": {"litellm_source": {"cluster": "c", "path": "/p", "url": "x"}}}"#, "prices.litellm_source.url"),
        ];
        for (json, path) in cases {
            assert_eq!(err(json).path(), Some(path), "{json}");
        }
    }

    #[test]
    fn a_fetched_list_is_layered_like_an_inline_one_and_a_bad_one_is_an_error() {
        let c = Config::from_json(
            br#"{"prices": {"models": {"amazon.titan-text-express-v1": {"input": "0.5", "output": "1"}},
                "litellm_source": {"cluster": "prices", "path": "/litellm.json"}}}"#,
        )
        .unwrap();
        let source = c.prices.litellm_source.clone().unwrap();
        assert_eq!(
            source,
            PriceListSource {
                cluster: "prices".into(),
                path: "/litellm.json".into(),
                authority: "prices".into(),
                interval_seconds: DEFAULT_PRICE_LIST_INTERVAL_SECONDS,
                timeout_ms: DEFAULT_PRICE_LIST_TIMEOUT_MS,
            }
        );
        // Until a fetch succeeds the built-in table (plus overrides) prices requests.
        assert!(c.price_table().resolve("amazon.titan-text-premier-v1:0").is_none());
        let (table, imported) = c.price_table_with_litellm(LITELLM.as_bytes()).unwrap();
        assert_eq!(imported, 3);
        assert_eq!(table.resolve("amazon.titan-text-premier-v1:0").map(|(_, p)| p.output), Some(1_500_000));
        assert_eq!(table.resolve("amazon.titan-text-express-v1").map(|(_, p)| (p.input, p.output)), Some((500_000, 1_000_000)));
        for bad in [&b"<html>"[..], b"[1]", b"{\"m\": ", b""] {
            assert_eq!(c.price_table_with_litellm(bad).unwrap_err().path(), Some("prices.litellm_source"));
        }
    }

    #[test]
    fn azure_deployments_find_every_name_and_a_repeated_name_keeps_its_last_model() {
        let c = Config::from_json(
            br#"{"azure_deployments": {"zeta": "gpt-4o", "alpha": "gpt-4o-mini", "mid": "o1",
                                       "alpha": "gpt-4.1", "b": "o3"}}"#,
        )
        .unwrap();
        let get = |name: &str| c.azure_deployments.get(name).map(String::as_str);
        assert_eq!(get("zeta"), Some("gpt-4o"));
        assert_eq!(get("alpha"), Some("gpt-4.1"));
        assert_eq!(get("mid"), Some("o1"));
        assert_eq!(get("b"), Some("o3"));
        assert_eq!(get("alph"), None);
        assert_eq!(get(""), None);
        // Names are matched exactly, as the map's were.
        assert_eq!(get("Zeta"), None);
    }

    #[test]
    fn a_full_configuration_loads() {
        let json = br#"{
            "attribution": {"feature_header": "x-feature", "customer_header": "x-tenant",
                            "user_header": "x-user", "default_value": "none"},
            "prices": {"models": {"my-model": {"input": "0.30", "output": "1.20"}}},
            "azure_deployments": {"prod-gpt": "gpt-4o"},
            "routes": [
                {"path_prefix": "/llm/", "api": "openai.chat_completions"},
                {"path_prefix": "/llm/claude/", "authority": "Gateway.internal:8443",
                 "provider": "anthropic", "api": "anthropic.messages"}
            ],
            "max_decompressed_bytes": 1048576,
            "strip_accept_encoding": false,
            "metrics": {"max_label_values": 50}
        }"#;
        let c = Config::from_json(json).unwrap();
        assert_eq!(c.attribution.customer_header, "x-tenant");
        assert_eq!(c.azure_deployments.get("prod-gpt").map(String::as_str), Some("gpt-4o"));
        assert_eq!(c.max_decompressed_bytes, 1_048_576);
        assert!(!c.strip_accept_encoding);
        assert_eq!(c.metrics.max_label_values, 50);
        assert!(c.prices.overrides.models.iter().any(|(name, _)| name == "my-model"));
        // Longest prefix wins, and the authority must match (port ignored, case-insensitive).
        let hit = c.route_override("/llm/claude/v1/messages", "gateway.internal:8443").unwrap();
        assert_eq!(hit.api, Some(Api::AnthropicMessages));
        let broad = c.route_override("/llm/claude/v1/messages", "other.host").unwrap();
        assert_eq!(broad.api, Some(Api::OpenAiChatCompletions));
        assert!(c.route_override("/v1/chat/completions", "x").is_none());
    }

    #[test]
    fn a_provider_only_override_keeps_the_detected_api() {
        let o = RouteOverride {
            path_prefix: "/".into(),
            authority: None,
            provider: Some(Provider::AzureOpenAi),
            api: None,
        };
        let detected = Route { provider: Provider::OpenAi, operation: Operation::Chat, api: Api::OpenAiResponses };
        let r = o.apply(Some(detected)).unwrap();
        assert_eq!((r.provider, r.api), (Provider::AzureOpenAi, Api::OpenAiResponses));
        assert_eq!(o.apply(None), None);
    }

    #[test]
    fn identity_sources_are_parsed_and_errors_name_the_source() {
        let c = Config::from_json(
            br#"{"attribution": {"customer_from": [{"jwt_claim": ["realm", "org"], "payload_in_metadata": "claims"},
                {"metadata": ["istio", "peer", "workload"]}, {"property": ["source", "address"]}, {"header": "X-Org"}]}}"#,
        )
        .unwrap();
        let p = |v: &[&str]| IdentitySource::Property(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            c.attribution.customer_from,
            vec![
                p(&["metadata", "filter_metadata", "envoy.filters.http.jwt_authn", "claims", "realm", "org"]),
                p(&["metadata", "filter_metadata", "istio", "peer", "workload"]),
                p(&["source", "address"]),
                IdentitySource::Header("x-org".into()),
            ]
        );
        let jwt = Config::from_json(br#"{"attribution": {"feature_from": [{"jwt_claim": "https://x.io/team"}]}}"#).unwrap();
        assert_eq!(jwt.attribution.feature_from, vec![p(&["metadata", "filter_metadata", "envoy.filters.http.jwt_authn", "jwt_payload", "https://x.io/team"])]);
        let cases = [
            (r#"{"attribution": {"customer_from": []}}"#, "attribution.customer_from"),
            (r#"{"attribution": {"customer_from": {"header": "x"}}}"#, "attribution.customer_from"),
            (r#"{"attribution": {"user_from": [{}]}}"#, "attribution.user_from[0]"),
            (r#"{"attribution": {"user_from": [{"header": "a", "jwt_claim": "b"}]}}"#, "attribution.user_from[0]"),
            (r#"{"attribution": {"user_from": [{"header": "x"}, {"header": "a b"}]}}"#, "attribution.user_from[1].header"),
            (r#"{"attribution": {"user_from": [{"jwt_claim": ""}]}}"#, "attribution.user_from[0].jwt_claim"),
            (r#"{"attribution": {"user_from": [{"jwt_claim": ["a", 1]}]}}"#, "attribution.user_from[0].jwt_claim[1]"),
            (r#"{"attribution": {"user_from": [{"header": "x", "payload_in_metadata": "p"}]}}"#, "attribution.user_from[0].payload_in_metadata"),
            (r#"{"attribution": {"user_from": [{"metadata": ["only-namespace"]}]}}"#, "attribution.user_from[0].metadata"),
            (r#"{"attribution": {"user_from": [{"cookie": "x"}]}}"#, "attribution.user_from[0].cookie"),
            (r#"{"attribution": {"customer_header": "x-a", "customer_from": [{"header": "x-b"}]}}"#, "attribution.customer_from"),
            (r#"{"attribution": {"strip_headers": "yes"}}"#, "attribution.strip_headers"),
            (r#"{"attribution": {"api_key_salt": "short"}}"#, "attribution.api_key_salt"),
            (r#"{"attribution": {"api_key_salt": 5}}"#, "attribution.api_key_salt"),
        ];
        for (json, path) in cases {
            assert_eq!(err(json).path(), Some(path), "{json}");
        }
        let nine = [r#"{"header": "x"}"#; MAX_IDENTITY_SOURCES + 1].join(",");
        assert_eq!(err(&format!(r#"{{"attribution": {{"user_from": [{nine}]}}}}"#)).path(), Some("attribution.user_from"));
    }
}
