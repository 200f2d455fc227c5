//! Stream framing: how a response body is cut into events before the JSON scanner reads them.
//!
//! Each framer is byte-oriented, incremental and bounded: it keeps state across chunk
//! boundaries, never buffers a whole event, and reports framing faults as typed errors.
//! SSE (OpenAI, Anthropic, Azure) lives here now; NDJSON and AWS eventstream framing
//! (Gemini/Ollama, Bedrock) are separate modules.

pub mod sse;
// pub mod eventstream; pub mod ndjson;

pub use sse::{SseError, SseFramer, SseSink};
