//! STUB: the proxy-wasm shell (owned by the shell work).
