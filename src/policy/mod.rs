//! Per-call policy. Pure decisions live in this module's files; `stack` assembles the tower
//! layers (in `crate::layers`) that apply them to every `tools/call`.

pub mod stack;
