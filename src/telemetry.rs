//! STUB: telemetry (owned by the pipeline work).
