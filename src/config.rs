//! STUB owned by the pipeline work: the plugin configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {}
