//! STUB: decode (owned by the pipeline work).
