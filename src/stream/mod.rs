//! STUB: stream framing (SSE now; NDJSON and AWS eventstream later).
