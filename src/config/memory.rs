//! `[memory]`: opt-in long-term memory, a per-principal key-value space the gateway serves itself
//! as an upstream of built-in tools (so policy, audit and namespacing treat it like any other).

use super::UpstreamConfig;
use serde::Deserialize;

/// Largest key, in bytes (UTF-8): keys are names, not payloads.
pub const MAX_KEY_BYTES: usize = 256;
/// Most keys one `memory_list` call returns.
pub const MAX_LIST_LIMIT: usize = 1000;
/// Upper bound for `max_value_bytes`: a value travels in one JSON-RPC message in each direction.
const MAX_VALUE_CEILING: usize = 1024 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    /// Off by default: what a model stores outlives its session, so keeping it is a choice.
    #[serde(default)]
    pub enabled: bool,
    /// The upstream name: the tool prefix (`memory__memory_put`) and the name policies use
    /// (`[[upstream]] name = "memory"`).
    #[serde(default = "default_name")]
    pub name: String,
    /// Largest value, in bytes (UTF-8).
    #[serde(default = "default_max_value")]
    pub max_value_bytes: usize,
}

fn default_name() -> String {
    "memory".into()
}
fn default_max_value() -> usize {
    64 * 1024
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig { enabled: false, name: default_name(), max_value_bytes: default_max_value() }
    }
}

/// An upstream the gateway serves in-process instead of through a process or a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builtin {
    Memory { max_value_bytes: usize },
}

impl MemoryConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) {
            return Err(format!("memory.name = {:?}: must be non-empty and use only A-Z a-z 0-9 _ -", self.name));
        }
        if self.max_value_bytes == 0 || self.max_value_bytes > MAX_VALUE_CEILING {
            return Err(format!(
                "memory.max_value_bytes = {}: must be between 1 and {MAX_VALUE_CEILING}",
                self.max_value_bytes
            ));
        }
        Ok(())
    }

    /// The built-in upstream when memory is enabled.
    pub fn upstream(&self) -> Option<UpstreamConfig> {
        self.enabled.then(|| UpstreamConfig {
            name: self.name.clone(),
            // It runs in-process: there is nothing to be down, and store failures answer per call.
            required: false,
            builtin: Some(Builtin::Memory { max_value_bytes: self.max_value_bytes }),
            ..UpstreamConfig::default()
        })
    }
}
