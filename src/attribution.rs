//! STUB: attribution (owned by the pipeline work).
