//! The per-request context: feeds host callbacks to the core's [`Exchange`].
//!
//! Response callbacks always return `Continue`: bytes are read as they pass and never held,
//! so the filter adds no latency to streams and cannot stall them. A request is held back only
//! when [`admission::needs_body`] says so from its head (a budget or cap applies to the caller,
//! or usage may have to be injected into a chat stream): its body is buffered up to
//! `max_request_body_bytes`, then [`admission::decide`] rewrites, reserves or rejects it
//! before any of the body goes upstream (the headers do, without `content-length`; see
//! `on_http_request_headers`). A larger body gives up holding (fail open:
//! forwarded unchanged, reserved from its size, counted). The exchange is finished and
//! published at the end of the response, so that filter state is in place before the access
//! log is written, or in `on_log` when the response never ended (client disconnect, upstream
//! reset). `on_log` runs exactly once for every stream, so nothing escapes metering.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, LogLevel, MapType};

use super::adapter;
use super::host::{header_pairs, HeaderPairs, HostClock, HostSharedStore};
use super::log;
use super::root::Shared;
use crate::admission::{self, Ticket, Verdict};
use crate::meter::{Exchange, RequestEdits, RequestHead};

pub(crate) struct Http {
    context_id: u32,
    shared: Option<Rc<Shared>>,
    /// The metered request; `None` for passthrough traffic and once published.
    exchange: Option<Exchange>,
    /// Set while this filter answers the request itself: Envoy runs a local reply back
    /// through the response callbacks, and our own reply is not upstream traffic to meter.
    local_reply: bool,
    /// The request is held back (headers paused, body buffered) until admission decides.
    holding: bool,
    /// The request body is compressed: it is admitted from its size and never rewritten.
    compressed_request: bool,
    /// The admitted request's reservation, settled exactly once when the exchange ends.
    ticket: Option<Ticket>,
    /// Remaining-budget headers to add to the response (`remaining_headers: true`).
    response_headers: Vec<(String, String)>,
}

/// Reads one header map value; values that are not UTF-8 are read lossily instead of making
/// the SDK panic (its `get_map_value` unwraps the conversion).
fn header_value(context_id: u32, map: MapType, name: &str) -> Option<String> {
    match hostcalls::get_map_value_bytes(map, name) {
        Ok(value) => value.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        Err(status) => {
            log(
                LogLevel::Warn,
                context_id,
                &format!("cannot read header {name}: {status:?}"),
            );
            None
        }
    }
}

/// The request head as the core sees it: every header read from the host in one call when the
/// request arrives (see [`header_pairs`]), then looked up in memory. Values that are not UTF-8
/// are read lossily, as single reads were.
struct HostRequestHead {
    context_id: u32,
    headers: HeaderPairs,
}

impl HostRequestHead {
    fn read(context_id: u32) -> Self {
        let headers = header_pairs(MapType::HttpRequestHeaders).unwrap_or_else(|error| {
            log(LogLevel::Warn, context_id, &format!("cannot read the request headers: {error}"));
            Vec::new()
        });
        Self { context_id, headers }
    }
}

impl RequestHead for HostRequestHead {
    fn header(&self, name: &str) -> Option<String> {
        // Header names are case-insensitive; Envoy keeps them lower-case, configured names
        // may not be. The first of repeated headers wins, as with the host's single read.
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
    }
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        // Absent metadata is the normal case (no JWT, no peer): only host failures are logged.
        match hostcalls::get_property(path.to_vec()) {
            Ok(value) => value,
            Err(status) => {
                log(
                    LogLevel::Debug,
                    self.context_id,
                    &format!("cannot read property {}: {status:?}", path.join(".")),
                );
                None
            }
        }
    }
}

impl Http {
    pub(crate) fn new(context_id: u32, shared: Option<Rc<Shared>>) -> Self {
        Self {
            context_id,
            shared,
            exchange: None,
            local_reply: false,
            holding: false,
            compressed_request: false,
            ticket: None,
            response_headers: Vec::new(),
        }
    }

    fn log(&self, level: LogLevel, message: &str) {
        log(level, self.context_id, message);
    }

    /// The host clock in ms; `None` (logged) when it cannot be read.
    fn now(&self) -> Option<u64> {
        HostClock
            .try_now_unix_millis()
            .map_err(|error| self.log(LogLevel::Warn, &format!("cannot read the clock: {error}")))
            .ok()
    }

    /// Reads the newly arrived body bytes. With `Continue`, Envoy hands each chunk to the
    /// callback on its own, so the buffer holds exactly `size` new bytes.
    fn read_body(&self, buffer: BufferType, size: usize) -> Vec<u8> {
        if size == 0 {
            return Vec::new();
        }
        match hostcalls::get_buffer(buffer, 0, size) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                self.log(
                    LogLevel::Warn,
                    &format!("cannot read {buffer:?}: {status:?}"),
                );
                Vec::new()
            }
        }
    }

    fn apply_edits(&self, edits: &RequestEdits) {
        for name in &edits.remove_headers {
            if let Err(status) = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name) {
                self.log(
                    LogLevel::Warn,
                    &format!("cannot remove request header {name}: {status:?}"),
                );
            }
        }
        for (name, value) in &edits.set_headers {
            if let Err(status) =
                hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value))
            {
                self.log(
                    LogLevel::Warn,
                    &format!("cannot set request header {name}: {status:?}"),
                );
            }
        }
    }

    /// Publishes the API key id (read before any header is stripped) and removes the
    /// attribution headers when configured, so the upstream never sees client-set values.
    fn apply_identity(&self, config: &crate::config::AttributionConfig, head: &HostRequestHead) {
        use crate::attribution;
        if let Some(id) = attribution::api_key_id(config, &|name| head.header(name)) {
            let key = attribution::API_KEY_ID_FILTER_STATE;
            if let Err(status) = hostcalls::set_property(vec![key], Some(id.as_bytes())) {
                self.log(LogLevel::Warn, &format!("cannot set filter state {key}: {status:?}"));
            }
        }
        if config.strip_headers {
            for name in attribution::attribution_headers(config) {
                if let Err(status) = hostcalls::remove_map_value(MapType::HttpRequestHeaders, &name) {
                    self.log(
                        LogLevel::Warn,
                        &format!("cannot remove request header {name}: {status:?}"),
                    );
                }
            }
        }
    }

    fn apply_metrics(&self, shared: &Shared, updates: &[crate::telemetry::MetricUpdate]) {
        let Ok(mut metrics) = shared.vm.metrics.try_borrow_mut() else {
            self.log(
                LogLevel::Error,
                "metrics state busy; stats for this request dropped",
            );
            return;
        };
        let failed = adapter::apply(&mut *metrics, updates);
        if failed > 0 {
            self.log(LogLevel::Warn, &format!("{failed} metric updates failed"));
        }
    }

    /// Finishes the exchange (once) and publishes its record as filter state and stats.
    fn publish(&mut self) {
        let Some(mut exchange) = self.exchange.take() else {
            return;
        };
        let now = HostClock.try_now_unix_millis().unwrap_or_else(|error| {
            self.log(LogLevel::Warn, &format!("cannot read the clock: {error}"));
            0
        });
        let record = exchange.finish(now);
        if let Some(ticket) = self.ticket.take() {
            self.settle(ticket, &record, now);
        }
        for (key, value) in adapter::filter_state(&record) {
            if let Err(status) = hostcalls::set_property(vec![key], Some(value.as_bytes())) {
                self.log(
                    LogLevel::Warn,
                    &format!("cannot set filter state {key}: {status:?}"),
                );
            }
        }
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let updates = match shared.vm.telemetry.try_borrow_mut() {
            Ok(mut telemetry) => adapter::metric_plan(&record, &mut telemetry, &HostSharedStore),
            Err(_) => {
                self.log(
                    LogLevel::Error,
                    "telemetry state busy; stats for this request dropped",
                );
                return;
            }
        };
        self.apply_metrics(&shared, &updates);
    }

    fn apply_budget_metrics(&self, updates: &[crate::telemetry::MetricUpdate]) {
        if updates.is_empty() {
            return;
        }
        if let Some(shared) = &self.shared {
            self.apply_metrics(shared, updates);
        }
    }

    /// Releases the reservation and books what the request used.
    fn settle(&self, ticket: Ticket, record: &crate::meter::Record, now: u64) {
        let Some(shared) = self.shared.clone() else { return };
        let Ok(limits) = shared.limits.try_borrow() else {
            // Cannot happen (single-threaded VM, no borrow held across callbacks); settle
            // against the configured budgets so the reservation is still released.
            let settled = ticket.settle(&HostSharedStore, &shared.config.budget, &shared.config.budget.budgets, record, now);
            self.log_settled(&settled);
            return;
        };
        let settled = ticket.settle(&HostSharedStore, &shared.config.budget, limits.budgets(), record, now);
        drop(limits);
        self.log_settled(&settled);
        self.apply_budget_metrics(&settled.metrics);
    }

    fn log_settled(&self, settled: &admission::Settled) {
        for error in &settled.report.errors {
            self.log(LogLevel::Warn, &format!("budget settlement: {error}"));
        }
        if settled.report.late > 0 {
            self.log(LogLevel::Info, "budget settlement after the window moved on: spend dropped");
        }
    }

    /// Reads `size` bytes of the buffered request body from the start.
    fn read_held_body(&self, size: usize) -> Vec<u8> {
        self.read_body(BufferType::HttpRequestBody, size)
    }

    /// Runs admission for a held request. `body` is the complete body, or `None` when holding
    /// gave up (too large). Returns the action for the body callback.
    fn admit(&mut self, body: Option<&[u8]>, body_bytes: u64, buffered: usize) -> Action {
        self.holding = false;
        let Some(shared) = self.shared.clone() else { return Action::Continue };
        let Some(exchange) = self.exchange.as_ref() else { return Action::Continue };
        let now = match HostClock.try_now_unix_millis() {
            Ok(now) => now,
            Err(error) => {
                self.log(LogLevel::Warn, &format!("cannot read the clock, request not admitted: {error}"));
                return Action::Continue;
            }
        };
        let Ok(limits) = shared.limits.try_borrow() else {
            self.log(LogLevel::Error, "limits cache busy; request not admitted");
            return Action::Continue;
        };
        let plain = if self.compressed_request { None } else { body };
        let decided = admission::decide(
            &HostSharedStore,
            &admission::Input {
                config: &shared.config,
                budgets: limits.budgets(),
                route: exchange.route(),
                who: exchange.attribution(),
                facts: exchange.request_facts(),
                body: plain,
                body_bytes: exchange.request_facts().map_or(body_bytes, |f| f.body_bytes.max(body_bytes)),
                deployment_model: exchange.deployment_model(),
            },
            now,
        );
        drop(limits);
        for error in &decided.errors {
            self.log(LogLevel::Warn, &format!("budget admission: {error}"));
        }
        self.apply_budget_metrics(&decided.metrics);
        match decided.verdict {
            Verdict::Forward(forward) => {
                if let Some(new_body) = &forward.new_body {
                    self.replace_request_body(buffered, new_body);
                }
                if let Some(exchange) = self.exchange.as_mut() {
                    if forward.usage_injected {
                        exchange.set_usage_injected(true);
                    }
                    if let Some(decision) = forward.decision {
                        exchange.set_budget_decision(decision);
                    }
                }
                self.ticket = forward.ticket;
                self.response_headers = forward.response_headers;
                Action::Continue
            }
            Verdict::Reject { rejection, decision } => {
                if let Some(exchange) = self.exchange.as_mut() {
                    exchange.set_budget_decision(decision);
                    // Our own 429 is the response: recorded as such, never as upstream usage.
                    exchange.on_response_headers(Some(rejection.status), &|_| None);
                }
                let headers: Vec<(&str, &str)> =
                    rejection.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                self.send_local_reply(u32::from(rejection.status), headers, &rejection.body);
                if self.local_reply {
                    Action::Pause
                } else {
                    // The reply could not be sent: let the request through rather than hang it.
                    Action::Continue
                }
            }
        }
    }

    /// Replaces the buffered request body. Its `content-length` was removed when holding began
    /// (the headers are already on their way upstream), so the new length needs no fixing.
    fn replace_request_body(&self, buffered: usize, new_body: &[u8]) {
        if let Err(status) = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, buffered, new_body) {
            self.log(LogLevel::Warn, &format!("cannot rewrite the request body: {status:?}"));
        }
    }

    /// Answers the request from the filter itself (e.g. a budget rejection). The reply runs
    /// back through the response callbacks; `local_reply` keeps it out of response metering.
    pub(crate) fn send_local_reply(
        &mut self,
        status: u32,
        headers: Vec<(&str, &str)>,
        body: &[u8],
    ) {
        self.local_reply = true;
        if let Err(status) = hostcalls::send_http_response(status, headers, Some(body)) {
            self.log(
                LogLevel::Error,
                &format!("cannot send local reply: {status:?}"),
            );
            self.local_reply = false;
        }
    }

    #[cfg(feature = "test-panic")]
    fn maybe_test_panic(&self) {
        let requested = header_value(
            self.context_id,
            MapType::HttpRequestHeaders,
            "x-tokenmeter-test-panic",
        );
        if requested.as_deref() == Some("1") {
            // Only in builds with the `test-panic` feature: lets the end-to-end suite check
            // that a panic is logged and the VM is reloaded without taking traffic down.
            #[allow(clippy::panic)]
            {
                panic!("x-tokenmeter-test-panic requested a panic");
            }
        }
    }
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        #[cfg(feature = "test-panic")]
        self.maybe_test_panic();

        let Some(shared) = self.shared.clone() else {
            return Action::Continue;
        };
        let head = HostRequestHead::read(self.context_id);
        match Exchange::begin(&shared.config, &head) {
            Some((mut exchange, edits)) => {
                self.apply_edits(&edits);
                self.apply_identity(&shared.config.attribution, &head);
                match HostClock.try_now_unix_millis() {
                    Ok(now) => exchange.set_start_time(now),
                    Err(error) => {
                        self.log(LogLevel::Warn, &format!("cannot read the clock: {error}"))
                    }
                }
                if end_of_stream {
                    exchange.on_request_body(&[], true);
                }
                let hold = !end_of_stream
                    && match shared.limits.try_borrow() {
                        Ok(limits) => admission::needs_body(
                            &shared.config,
                            limits.budgets(),
                            exchange.route(),
                            exchange.attribution(),
                        ),
                        Err(_) => false,
                    };
                self.compressed_request = head.header("content-encoding").is_some_and(|e| {
                    let e = e.trim();
                    !e.is_empty() && !e.eq_ignore_ascii_case("identity")
                });
                self.exchange = Some(exchange);
                if hold {
                    // The body is buffered and admitted before any of it goes upstream.
                    // Pausing the headers would not work: the proxy-wasm host turns a paused
                    // head into StopAllIteration, and the body is then never handed to this
                    // filter. So the head continues (only headers reach the upstream, which
                    // is reset if admission rejects) and the body callbacks hold the body.
                    // The body may be rewritten, so its length is left to the codec
                    // (chunked upstream on HTTP/1.1).
                    self.holding = true;
                    if let Err(status) = hostcalls::remove_map_value(MapType::HttpRequestHeaders, "content-length") {
                        self.log(LogLevel::Warn, &format!("cannot remove content-length: {status:?}"));
                    }
                }
            }
            None => self.apply_metrics(&shared, &adapter::passthrough_plan()),
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.holding {
            // While paused, Envoy buffers and `body_size` is everything buffered so far.
            let max = self.shared.as_ref().map_or(0, |s| s.config.max_request_body_bytes);
            let too_large = u64::try_from(body_size).unwrap_or(u64::MAX) > max;
            if !end_of_stream && !too_large {
                return Action::Pause;
            }
            let body = self.read_held_body(body_size);
            if let Some(exchange) = self.exchange.as_mut() {
                exchange.on_request_body(&body, end_of_stream);
            }
            let size = u64::try_from(body.len()).unwrap_or(u64::MAX);
            if too_large {
                self.log(LogLevel::Info, "request body above max_request_body_bytes: forwarded unchanged");
                self.apply_budget_metrics(&crate::telemetry::body_too_large_plan());
                return self.admit(None, size, body_size);
            }
            return self.admit(Some(&body), size, body_size);
        }
        if self.exchange.is_some() {
            let chunk = self.read_body(BufferType::HttpRequestBody, body_size);
            if let Some(exchange) = self.exchange.as_mut() {
                exchange.on_request_body(&chunk, end_of_stream);
            }
        }
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        // Trailers end the body without an end-of-stream body callback.
        if let Some(exchange) = self.exchange.as_mut() {
            exchange.on_request_body(&[], true);
        }
        if self.holding {
            // The buffered body is not handed to this callback: admit without a rewrite.
            return self.admit(None, 0, 0);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.local_reply {
            return Action::Continue;
        }
        for (name, value) in std::mem::take(&mut self.response_headers) {
            if let Err(status) = hostcalls::set_map_value(MapType::HttpResponseHeaders, &name, Some(&value)) {
                self.log(LogLevel::Warn, &format!("cannot add response header {name}: {status:?}"));
            }
        }
        if self.exchange.is_none() {
            return Action::Continue;
        }
        let context_id = self.context_id;
        let status = header_value(context_id, MapType::HttpResponseHeaders, ":status")
            .and_then(|s| s.trim().parse::<u16>().ok());
        let header = move |name: &str| header_value(context_id, MapType::HttpResponseHeaders, name);
        let now = self.now();
        let mut rewrites = false;
        #[cfg(feature = "test-panic")]
        let test_injected = header_value(context_id, MapType::HttpResponseHeaders, "x-tokenmeter-test-usage-injected")
            .is_some_and(|v| v == "1");
        if let Some(exchange) = self.exchange.as_mut() {
            // Test builds only: lets the end-to-end suite exercise the response-side stripping
            // with a client that sent include_usage itself, independently of the injection.
            // A response header (the mock echoes it): request headers cannot be read in the
            // response phase (the SDK panics on the host's status).
            #[cfg(feature = "test-panic")]
            if test_injected {
                exchange.set_usage_injected(true);
            }
            // Timed, for the stream timing histograms; without a clock, untimed.
            match now {
                Some(now) => exchange.on_response_headers_at(status, &header, now),
                None => exchange.on_response_headers(status, &header),
            }
            rewrites = exchange.rewrites_response_body();
            if end_of_stream {
                exchange.on_response_body(&[], true);
            }
        }
        // The body the client gets is shorter than the upstream's: its length no longer holds.
        if rewrites {
            if let Err(status) = hostcalls::remove_map_value(MapType::HttpResponseHeaders, "content-length") {
                self.log(LogLevel::Warn, &format!("cannot remove content-length: {status:?}"));
            }
        }
        if end_of_stream {
            self.publish();
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.local_reply || self.exchange.is_none() {
            return Action::Continue;
        }
        let chunk = self.read_body(BufferType::HttpResponseBody, body_size);
        let now = if self.exchange.as_ref().is_some_and(Exchange::wants_body_time) { self.now() } else { None };
        let mut replacement = None;
        if let Some(exchange) = self.exchange.as_mut() {
            match now {
                Some(now) => exchange.on_response_body_at(&chunk, end_of_stream, now),
                None => exchange.on_response_body(&chunk, end_of_stream),
            }
            replacement = exchange.filter_response_body(&chunk, end_of_stream);
        }
        // The client gets the stream without what the include_usage injection added. On
        // failure the original bytes flow (fail open) and the failure is logged.
        if let Some(bytes) = replacement {
            if let Err(status) = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, body_size, &bytes) {
                self.log(LogLevel::Warn, &format!("cannot rewrite the response body: {status:?}"));
            }
        }
        if end_of_stream {
            self.publish();
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.local_reply {
            return Action::Continue;
        }
        if let Some(exchange) = self.exchange.as_mut() {
            exchange.on_response_body(&[], true);
        }
        self.publish();
        Action::Continue
    }

    fn on_log(&mut self) {
        // Covers every stream that did not end normally: client disconnect, upstream reset,
        // local replies. A no-op when the response end already published.
        self.publish();
    }
}
