//! STUB: stream framing (SSE now; NDJSON and AWS eventstream later).
pub mod eventstream;
pub mod json_array;
pub mod ndjson;
