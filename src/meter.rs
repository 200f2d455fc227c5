//! The per-request state machine the shell drives: one [`Exchange`] per metered request.
//!
//! Contract for the shell: create an [`Exchange`] from the request head, apply the returned
//! [`RequestEdits`], feed it every callback, and at the end publish the [`Record`] through
//! `telemetry`. Times are passed in, never read (sans-io): the start with
//! [`Exchange::set_start_time`], the response with the `_at` variants of the response
//! callbacks, the end with [`Exchange::finish`]; the untimed variants still work and only
//! leave the stream timings out. Every method is infallible and bounded: whatever the bytes are, traffic
//! continues, memory stays fixed (scanners keep bounded state, the decoder a fixed window),
//! and the record says what was missing and why. Bodies are never buffered.
//!
//! The exchange is where the layers meet: `providers` detects the route and scans bodies,
//! `decode` undoes `content-encoding`, `usage` normalises, `pricing` prices, `attribution`
//! names who pays. It holds no process-wide state; the label guard and cost carry that span
//! requests belong to the caller (see `telemetry::metric_plan`).

use std::sync::Arc;

use crate::attribution::Attribution;
use crate::config::Config;
use crate::decode::{parse_content_encoding, DecodeError, Decoder};
use crate::pricing::{PicoUsd, PriceTable, PricingContext, ServiceTier};
use crate::retry::{self, RetrySource};
use crate::providers::{self, Provider, RequestFacts, RequestScanner, ResponseFacts, ResponseOutcome, ResponseScanner, Route};
use crate::stream::usage_strip::UsageChunkStripper;
use crate::usage::{CostSource, NormalizedUsage, Usage, UsageSource};

/// Header removed from metered requests so that upstreams answer uncompressed.
pub const ACCEPT_ENCODING: &str = "accept-encoding";

/// Longest Azure deployment name kept from a path.
const MAX_DEPLOYMENT_LEN: usize = 256;

/// Bytes per token assumed when usage must be estimated: the common rule of thumb for
/// English text and JSON (about four bytes per token). Request bodies include their JSON
/// framing, so the input estimate errs high, which is the safe side for budgets.
pub const ESTIMATE_BYTES_PER_TOKEN: u64 = 4;

/// What the shell can tell about the request head.
pub trait RequestHead {
    fn header(&self, name: &str) -> Option<String>;
    /// `:path`, as Envoy presents it among the request headers.
    fn path(&self) -> Option<String> {
        self.header(":path")
    }
    /// `:authority`, as Envoy presents it among the request headers.
    fn authority(&self) -> Option<String> {
        self.header(":authority")
    }
    /// `:method`, as Envoy presents it among the request headers.
    fn method(&self) -> Option<String> {
        self.header(":method")
    }
    /// A host property (dynamic metadata, peer identity) for trusted attribution sources;
    /// `None` when absent or unreadable.
    fn property(&self, _path: &[&str]) -> Option<Vec<u8>> {
        None
    }
}

/// Header edits the shell must apply to the request before it goes upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestEdits {
    pub remove_headers: Vec<String>,
    pub set_headers: Vec<(String, String)>,
}

/// Why usage is missing, in records and logs (`llm.usage_missing_reason`).
pub mod missing {
    /// No response headers arrived (reset or local reply before upstream answered).
    pub const NO_RESPONSE: &str = "no_response";
    /// The body was read but held no usage (e.g. a stream without `include_usage`).
    pub const NOT_REPORTED: &str = "not_reported";
    /// The body could not be read as the API's format.
    pub const UNREADABLE: &str = "unreadable";
}

/// Everything published for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub route: Route,
    pub request: RequestFacts,
    pub response: ResponseFacts,
    /// HTTP status of the response, if headers arrived.
    pub status: Option<u16>,
    /// OpenTelemetry-meaning usage; all 0 when missing.
    pub usage: NormalizedUsage,
    pub usage_source: UsageSource,
    /// Why usage is missing (`None` when reported); a `missing::*` or `DecodeError::kind` name.
    pub usage_missing_reason: Option<&'static str>,
    /// Canonical model name the price came from; `None` when unpriced. Kept when the
    /// provider's reported cost is used instead (`cost_source`), for labels and comparison.
    pub priced_model: Option<String>,
    /// `None` when unpriced or when usage is missing: never a made-up $0. The provider's
    /// own figure when it reported one (it is what the user is billed).
    pub cost: Option<PicoUsd>,
    /// Where `cost` came from (`llm.cost_source`); `None` exactly when `cost` is.
    pub cost_source: Option<CostSource>,
    pub attribution: Attribution,
    /// Azure OpenAI deployment name from the path.
    pub azure_deployment: Option<String>,
    /// The model `azure_deployments` maps the deployment to.
    pub deployment_model: Option<String>,
    /// Version of the price table the cost came from.
    pub price_table_version: Option<String>,
    /// From [`Exchange::set_start_time`] to [`Exchange::finish`], when the start was given.
    pub duration_ms: Option<u64>,
    /// Who retried this request, if it is a retry (see `retry`).
    pub retry: Option<RetrySource>,
    /// The response was a stream: the request asked for one, or the response came as
    /// server-sent events or an event stream.
    pub streamed: bool,
    /// Streams only: from the start to the first response body chunk that carried generated
    /// content (text, reasoning or tool arguments), as given to
    /// [`Exchange::on_response_body_at`]. `None` for non-streams, streams without content,
    /// and when no times were given.
    pub time_to_first_token_ms: Option<u64>,
    /// From the start to the response headers, as given to [`Exchange::on_response_headers_at`].
    pub time_to_response_headers_ms: Option<u64>,
    /// The budget decision taken at admission (`llm.budget.*`); `None` when no budget applied.
    pub budget: Option<crate::budget::Decision>,
}

/// Decoding state of one body direction.
struct Body {
    decoder: Option<Decoder>,
    /// Set when the body's encoding is unsupported or decoding failed; the scanner then sees
    /// no (more) bytes.
    error: Option<DecodeError>,
}

impl Body {
    fn new(content_encoding: Option<String>, max_output: u64) -> Self {
        match content_encoding.as_deref().map(parse_content_encoding) {
            None | Some(Ok(None)) => Body { decoder: None, error: None },
            Some(Ok(Some(c))) => Body { decoder: Some(Decoder::new(c, max_output)), error: None },
            Some(Err(e)) => Body { decoder: None, error: Some(e) },
        }
    }

    /// Passes a chunk (decoded if needed) to `sink`.
    fn feed(&mut self, chunk: &[u8], sink: &mut dyn FnMut(&[u8])) {
        if self.error.is_some() {
            return;
        }
        match &mut self.decoder {
            None => sink(chunk),
            Some(d) => {
                if let Err(e) = d.feed(chunk, sink) {
                    self.error = Some(e);
                }
            }
        }
    }

    /// Ends the body; a truncated compressed stream is recorded as an error.
    fn end(&mut self) {
        if let (None, Some(d)) = (&self.error, &mut self.decoder) {
            if let Err(e) = d.finish() {
                self.error = Some(e);
            }
        }
        // Frees the decoder's window as soon as the body is complete.
        self.decoder = None;
    }
}

struct ResponseSide {
    body: Body,
    scanner: ResponseScanner,
    outcome: Option<ResponseOutcome>,
}

impl ResponseSide {
    fn finish(&mut self) -> ResponseOutcome {
        if let Some(o) = &self.outcome {
            return o.clone();
        }
        self.body.end();
        let o = self.scanner.finish();
        self.outcome = Some(o.clone());
        o
    }
}

/// One metered request, from request headers to the end of the response.
pub struct Exchange {
    route: Route,
    max_decompressed_bytes: u64,
    prices: Arc<PriceTable>,
    attribution: Attribution,
    azure_deployment: Option<String>,
    deployment_model: Option<String>,
    /// The model named by the path (Gemini, Vertex AI, Bedrock), for bodies that lack it.
    path_model: Option<String>,
    request_body: Body,
    request_scanner: RequestScanner,
    request_facts: Option<RequestFacts>,
    response: Option<ResponseSide>,
    status: Option<u16>,
    started_unix_millis: Option<u64>,
    response_headers_unix_millis: Option<u64>,
    first_token_unix_millis: Option<u64>,
    /// The response content type says it is a stream.
    response_streamed: bool,
    retry: Option<RetrySource>,
    budget: Option<crate::budget::Decision>,
    record: Option<Record>,
    /// The filter added `stream_options.include_usage`; the client did not ask for it.
    usage_injected: bool,
    /// Removes what the injection added from the bytes the client receives.
    stripper: Option<UsageChunkStripper>,
}

impl Exchange {
    /// Starts metering; `None` for traffic that is not a known LLM API (counted, untouched).
    pub fn begin(config: &Config, head: &dyn RequestHead) -> Option<(Exchange, RequestEdits)> {
        let path = head.path().unwrap_or_default();
        let authority = head.authority().unwrap_or_default();
        let detected = providers::detect(&path, &authority);
        let route = match config.route_override(&path, &authority) {
            Some(o) => o.apply(detected),
            None => detected,
        }?;
        let azure_deployment = azure_deployment(&path);
        let deployment_model = azure_deployment.as_ref().and_then(|d| config.azure_deployments.get(d)).cloned();
        let mut edits = RequestEdits::default();
        if config.strip_accept_encoding && head.header(ACCEPT_ENCODING).is_some() {
            edits.remove_headers.push(ACCEPT_ENCODING.to_string());
        }
        let exchange = Exchange {
            route,
            max_decompressed_bytes: config.max_decompressed_bytes,
            prices: config.price_table(),
            attribution: Attribution::resolve(&config.attribution, &|name| head.header(name), &|path| head.property(path)),
            azure_deployment,
            deployment_model,
            path_model: providers::path_model(&path),
            request_body: Body::new(head.header("content-encoding"), config.max_decompressed_bytes),
            request_scanner: RequestScanner::new(route.api),
            request_facts: None,
            response: None,
            status: None,
            started_unix_millis: None,
            response_headers_unix_millis: None,
            first_token_unix_millis: None,
            response_streamed: false,
            retry: retry::classify(&config.retry_rules, &|name| head.header(name)),
            budget: None,
            record: None,
            usage_injected: false,
            stripper: None,
        };
        Some((exchange, edits))
    }

    /// The route being metered.
    pub fn route(&self) -> Route {
        self.route
    }

    /// Attribution read from the request head (for budgets and logs before the end).
    pub fn attribution(&self) -> &Attribution {
        &self.attribution
    }

    /// The request body's facts, once the body has ended (`None` before).
    pub fn request_facts(&self) -> Option<&RequestFacts> {
        self.request_facts.as_ref()
    }

    /// Whether the request is a retry, from its headers (see `retry`).
    pub fn retry(&self) -> Option<RetrySource> {
        self.retry
    }

    /// Marks that the filter injected `stream_options.include_usage` into the request (the
    /// client did not ask): the response's usage chunk and `"usage":null` members are then
    /// removed from what the client receives (see [`Exchange::filter_response_body`]).
    pub fn set_usage_injected(&mut self, injected: bool) {
        self.usage_injected = injected;
    }

    /// Whether `stream_options.include_usage` was injected.
    pub fn usage_injected(&self) -> bool {
        self.usage_injected
    }

    /// True once response headers said the client's body bytes will be rewritten; the
    /// shell must then drop the response's `content-length`.
    pub fn rewrites_response_body(&self) -> bool {
        self.stripper.is_some()
    }

    /// What the client should receive for this response chunk, when it differs from the
    /// chunk (`None`: pass the chunk unchanged). Call after [`Exchange::on_response_body`]
    /// with the same bytes, so that metering sees the original stream. Holds back at most the
    /// current incomplete SSE event (bounded; see `stream::usage_strip`).
    pub fn filter_response_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Option<Vec<u8>> {
        let stripper = self.stripper.as_mut()?;
        let mut out = Vec::with_capacity(chunk.len());
        stripper.feed(chunk, &mut out);
        if end_of_stream {
            stripper.finish(&mut out);
        }
        (out != chunk).then_some(out)
    }

    /// The model `azure_deployments` maps this request's deployment to, if any.
    pub fn deployment_model(&self) -> Option<&str> {
        self.deployment_model.as_deref()
    }

    /// The budget decision taken at admission, carried into the record (`llm.budget.*`).
    pub fn set_budget_decision(&mut self, decision: crate::budget::Decision) {
        self.budget = Some(decision);
    }

    /// Records when the request started, so that the record carries a duration.
    pub fn set_start_time(&mut self, now_unix_millis: u64) {
        self.started_unix_millis = Some(now_unix_millis);
    }

    pub fn on_request_body(&mut self, chunk: &[u8], end_of_stream: bool) {
        if self.record.is_some() || self.request_facts.is_some() {
            return;
        }
        let scanner = &mut self.request_scanner;
        self.request_body.feed(chunk, &mut |piece| scanner.feed(piece));
        if end_of_stream {
            self.request_body.end();
            self.request_facts = Some(self.request_scanner.finish());
        }
    }

    /// Picks the body framing from `content-type` and decoding from `content-encoding`.
    /// Later calls replace earlier ones (the last headers describe the body that follows).
    pub fn on_response_headers(&mut self, status: Option<u16>, header: &dyn Fn(&str) -> Option<String>) {
        if self.record.is_some() {
            return;
        }
        self.status = status;
        let content_type = header("content-type");
        // `text/event-stream` (SSE) and `application/vnd.amazon.eventstream` (Bedrock).
        self.response_streamed =
            content_type.as_deref().is_some_and(|ct| ct.to_ascii_lowercase().contains("event-stream"));
        let mut scanner = ResponseScanner::for_route(self.route, content_type.as_deref());
        if self.route.provider == Provider::AwsBedrock {
            let count = |name: &str| header(name).and_then(|v| v.trim().parse::<u64>().ok());
            scanner.set_header_usage(
                count("x-amzn-bedrock-input-token-count"),
                count("x-amzn-bedrock-output-token-count"),
            );
        }
        let content_encoding = header("content-encoding");
        // Strip only what can be rewritten byte for byte: an uncompressed OpenAI-style SSE
        // stream. Anything else passes unchanged (fail open).
        let is_sse = content_type.as_deref().is_some_and(|c| c.to_ascii_lowercase().contains("text/event-stream"));
        let identity = content_encoding.as_deref().is_none_or(|e| e.trim().is_empty() || e.trim().eq_ignore_ascii_case("identity"));
        self.stripper = (self.usage_injected && self.route.api.has_openai_usage_chunk() && is_sse && identity)
            .then(UsageChunkStripper::default);
        self.response = Some(ResponseSide {
            body: Body::new(content_encoding, self.max_decompressed_bytes),
            scanner,
            outcome: None,
        });
    }

    /// [`Exchange::on_response_headers`] at a time (ms since the Unix epoch, the clock of
    /// [`Exchange::set_start_time`]), for `llm.time_to_response_headers_ms`.
    pub fn on_response_headers_at(&mut self, status: Option<u16>, header: &dyn Fn(&str) -> Option<String>, now_unix_millis: u64) {
        if self.record.is_some() {
            return;
        }
        self.response_headers_unix_millis = Some(now_unix_millis);
        self.on_response_headers(status, header);
    }

    /// [`Exchange::on_response_body`] at a time (ms since the Unix epoch): the first chunk
    /// after which the body has carried generated content marks the first token.
    pub fn on_response_body_at(&mut self, chunk: &[u8], end_of_stream: bool, now_unix_millis: u64) {
        self.on_response_body(chunk, end_of_stream);
        if self.first_token_unix_millis.is_none() && self.record.is_none() {
            let seen = self.response.as_ref().is_some_and(|side| side.scanner.output_text_bytes() > 0);
            if seen {
                self.first_token_unix_millis = Some(now_unix_millis);
            }
        }
    }

    /// Whether [`Exchange::on_response_body_at`] still needs the time: only until the first
    /// token is seen. The shell reads the clock per body chunk only while this holds, which
    /// saves a host call on every later event of a stream.
    pub fn wants_body_time(&self) -> bool {
        self.first_token_unix_millis.is_none() && self.record.is_none()
    }

    /// Scans a response body chunk, without timing (no time to first token).
    pub fn on_response_body(&mut self, chunk: &[u8], end_of_stream: bool) {
        if self.record.is_some() {
            return;
        }
        // Body without headers should not happen; scan it as the API's default format.
        let route = self.route;
        let max = self.max_decompressed_bytes;
        let side = self.response.get_or_insert_with(|| ResponseSide {
            body: Body::new(None, max),
            scanner: ResponseScanner::for_route(route, None),
            outcome: None,
        });
        if side.outcome.is_some() {
            return;
        }
        let scanner = &mut side.scanner;
        side.body.feed(chunk, &mut |piece| scanner.feed(piece));
        if end_of_stream {
            side.finish();
        }
    }

    /// Ends the exchange (normal end, client disconnect or upstream reset alike). Calling it
    /// again returns the same record; callbacks after it are ignored.
    pub fn finish(&mut self, now_unix_millis: u64) -> Record {
        if let Some(r) = &self.record {
            return r.clone();
        }
        let mut request = match self.request_facts.take() {
            Some(f) => f,
            None => {
                self.request_body.end();
                self.request_scanner.finish()
            }
        };
        if request.model.is_none() {
            request.model = self.path_model.clone();
        }
        let (outcome, decode_error) = match &mut self.response {
            Some(side) => (Some(side.finish()), side.body.error.clone()),
            None => (None, None),
        };
        let reported = outcome.as_ref().is_some_and(|o| o.usage.is_reported());
        let success = self.status.is_none_or(|s| (200..300).contains(&s));
        // Not reported, but content was generated and read (a stream cut short, a server
        // that ignores `include_usage`): estimate from the sizes seen.
        let estimated = match &outcome {
            Some(o) if !reported && success && decode_error.is_none() && o.facts.output_text_bytes > 0 => {
                Some(estimate(request.body_bytes, o.facts.output_text_bytes))
            }
            _ => None,
        };
        let usage = match (&outcome, reported, &estimated) {
            (Some(o), true, _) => o.usage.normalize(o.conventions),
            (Some(o), false, Some(e)) => e.normalize(o.conventions),
            _ => NormalizedUsage::default(),
        };
        let usage_missing_reason = match (&outcome, reported) {
            (_, true) => None,
            (None, _) => Some(missing::NO_RESPONSE),
            (Some(o), false) => Some(match &decode_error {
                Some(e) => e.kind(),
                None if o.unreadable => missing::UNREADABLE,
                None => missing::NOT_REPORTED,
            }),
        };
        let provider_cost = outcome.as_ref().and_then(|o| o.usage.cost);
        let response = outcome.map(|o| o.facts).unwrap_or_default();
        let context = PricingContext {
            service_tier: ServiceTier::from_name(response.service_tier.as_deref().unwrap_or("")),
            batch: false,
        };
        let priced = [response.model.as_deref(), request.model.as_deref(), self.deployment_model.as_deref()]
            .into_iter()
            .flatten()
            .find_map(|model| self.prices.quote(model, &usage, context));
        let priced_model = priced.as_ref().map(|(name, _)| name.to_string());
        let (cost, cost_source) = match (provider_cost, priced) {
            (Some(billed), _) => (Some(billed), Some(CostSource::Provider)),
            (None, Some((_, quote))) if reported || estimated.is_some() => (Some(quote.cost), Some(CostSource::PriceTable)),
            _ => (None, None),
        };
        let since_start = |t: Option<u64>| Some(t?.saturating_sub(self.started_unix_millis?));
        let streamed = request.stream || self.response_streamed;
        let usage_source = match (reported, &estimated) {
            (true, _) => UsageSource::Reported,
            (false, Some(_)) => UsageSource::Estimated,
            (false, None) => UsageSource::Missing,
        };
        let record = Record {
            time_to_first_token_ms: if streamed { since_start(self.first_token_unix_millis) } else { None },
            time_to_response_headers_ms: since_start(self.response_headers_unix_millis),
            streamed,
            retry: self.retry,
            route: self.route,
            request,
            response,
            status: self.status,
            usage,
            usage_source,
            usage_missing_reason,
            priced_model,
            cost,
            cost_source,
            attribution: self.attribution.clone(),
            azure_deployment: self.azure_deployment.clone(),
            deployment_model: self.deployment_model.clone(),
            price_table_version: Some(self.prices.version().to_string()),
            duration_ms: self.started_unix_millis.map(|s| now_unix_millis.saturating_sub(s)),
            budget: self.budget.clone(),
        };
        // Drop the per-body state now: the exchange may live on until the stream is destroyed.
        self.response = None;
        self.record = Some(record.clone());
        record
    }
}

/// Usage estimated from the request body size and the generated text seen, rounding up.
fn estimate(request_bytes: u64, output_text_bytes: u64) -> Usage {
    let tokens = |bytes: u64| bytes.div_ceil(ESTIMATE_BYTES_PER_TOKEN);
    Usage { input_tokens: Some(tokens(request_bytes)), output_tokens: Some(tokens(output_text_bytes)), ..Usage::default() }
}

/// The deployment in an Azure OpenAI path, `/openai/deployments/{name}/...`.
fn azure_deployment(path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or(path);
    let rest = path.split("/openai/deployments/").nth(1)?;
    let name = rest.split('/').next()?;
    (!name.is_empty() && name.len() <= MAX_DEPLOYMENT_LEN).then(|| crate::attribution::log_safe(name))
}

/// Whether a provider is one of the OpenAI-compatible family (for `service_tier` naming).
pub fn is_openai_family(provider: Provider) -> bool {
    matches!(provider, Provider::OpenAi | Provider::AzureOpenAi)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;

    struct Head;

    impl RequestHead for Head {
        fn header(&self, name: &str) -> Option<String> {
            match name {
                ":path" => Some("/v1/messages".into()),
                ":authority" => Some("api.anthropic.com".into()),
                _ => None,
            }
        }
    }

    /// Feeds the Anthropic fixture stream one event per callback, the way the shell does:
    /// timed only while `wants_body_time` holds (`all_timed`: every event timed).
    fn stream_record(all_timed: bool) -> (Record, u32) {
        let stream = include_str!("../tests/fixtures/anthropic/stream-basic.sse");
        let (mut ex, _) = Exchange::begin(&Config::default(), &Head).unwrap();
        ex.set_start_time(1_000);
        ex.on_request_body(br#"{"model":"claude-haiku-4-5","max_tokens":100,"stream":true}"#, true);
        let sse = |name: &str| (name == "content-type").then(|| "text/event-stream".to_string());
        ex.on_response_headers_at(Some(200), &sse, 1_005);
        let events: Vec<&str> = stream.split_inclusive("\n\n").collect();
        let mut clock_reads = 0;
        for (i, event) in events.iter().enumerate() {
            let end = i + 1 == events.len();
            if all_timed || ex.wants_body_time() {
                clock_reads += 1;
                ex.on_response_body_at(event.as_bytes(), end, 1_010 + 10 * i as u64);
            } else {
                ex.on_response_body(event.as_bytes(), end);
            }
        }
        (ex.finish(2_000), clock_reads)
    }

    #[test]
    fn the_body_clock_is_read_only_until_the_first_token() {
        let (all, reads_all) = stream_record(true);
        let (lazy, reads_lazy) = stream_record(false);
        // The fixture's first text arrives in its third event (message_start and an empty
        // content_block_start come first): three clock reads instead of one per event.
        assert_eq!(reads_lazy, 3);
        assert!(reads_all > 3);
        assert_eq!(lazy.time_to_first_token_ms, Some(30));
        assert_eq!(lazy, all);
    }

    #[test]
    fn azure_deployments_are_read_from_the_path() {
        assert_eq!(
            azure_deployment("/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21").as_deref(),
            Some("prod-gpt4o")
        );
        assert_eq!(azure_deployment("/v1/chat/completions"), None);
        assert_eq!(azure_deployment("/openai/deployments//chat"), None);
    }
}
