//! STUB: the incremental JSON scanner (owned by the extraction work).
