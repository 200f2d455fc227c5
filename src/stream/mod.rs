//! Stream framing: how a response body is cut into events before the JSON scanner reads them.
//!
//! Each framer is byte-oriented, incremental and bounded: it keeps state across chunk
//! boundaries, never buffers a whole event, and reports framing faults as typed errors.
//! SSE carries OpenAI, Anthropic, Azure and Gemini `alt=sse` streams; NDJSON carries Ollama's
//! native API; the JSON-array framer cuts Gemini's default streamed array into elements; the
//! AWS eventstream decoder reads Bedrock's binary `application/vnd.amazon.eventstream`.

pub mod eventstream;
pub mod json_array;
pub mod ndjson;
pub mod sse;
pub mod usage_strip;

pub use sse::{SseError, SseFramer, SseSink};
