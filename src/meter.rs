//! STUB owned by the pipeline work: the per-request state machine the shell drives.
//!
//! Contract for the shell: create an [`Exchange`] from the request head, feed it every
//! callback, and at the end publish the [`Record`] through `telemetry`. Every method is
//! infallible: whatever the bytes are, traffic continues and the record says what was missing.

use crate::config::Config;

/// What the shell can tell about the request head.
pub trait RequestHead {
    fn path(&self) -> Option<String>;
    fn authority(&self) -> Option<String>;
    fn method(&self) -> Option<String>;
    fn header(&self, name: &str) -> Option<String>;
}

/// Header edits the shell must apply to the request before it goes upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestEdits {
    pub remove_headers: Vec<String>,
    pub set_headers: Vec<(String, String)>,
}

/// One metered request, from request headers to the end of the response.
pub struct Exchange {}

/// Everything published for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {}

impl Exchange {
    /// Starts metering; `None` for traffic that is not a known LLM API (counted, untouched).
    pub fn begin(_config: &Config, _head: &dyn RequestHead) -> Option<(Exchange, RequestEdits)> {
        None
    }
    pub fn on_request_body(&mut self, _chunk: &[u8], _end_of_stream: bool) {}
    pub fn on_response_headers(&mut self, _status: Option<u16>, _header: &dyn Fn(&str) -> Option<String>) {}
    pub fn on_response_body(&mut self, _chunk: &[u8], _end_of_stream: bool) {}
    /// Ends the exchange (normal end, client disconnect or upstream reset alike).
    pub fn finish(&mut self, _now_unix_millis: u64) -> Record {
        Record {}
    }
}
