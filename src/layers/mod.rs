//! Tower middleware for the per-call policy stack, one layer per file. Decisions come from
//! `crate::policy` (pure); these files only plumb them into `tools/call`.

pub mod audit_log;
pub mod check;
pub mod enforce_read_only;
pub mod gate;
pub mod hold_while_paused;
pub mod output_schema;
pub mod rate_limit;
pub mod redact_output;
pub mod require_allowlisted;
pub mod require_approval;
pub mod require_pinned_definition;
pub mod timeout;
pub mod validate_arguments;

#[cfg(test)]
pub(crate) mod testing;
