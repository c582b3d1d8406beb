//! Tower middleware for the per-call policy stack, one layer per file.
//!
//! Empty until the policy-stack issue: `policy::stack` is where layers are put in order.
