//! Namespacing of tool and prompt names across upstreams.
//!
//! A public name is `prefix + separator + name` (or just `name` when the prefix is empty), never
//! longer than MCP's 64-character limit: a name that would be longer is cut and given a short,
//! stable digest suffix, so it is the same on every listing and on every replica.

use sha2::{Digest, Sha256};

pub const MAX_TOOL_NAME: usize = 64;

/// The public (client-facing) name for `name` from an upstream with `prefix`.
pub fn public_name(prefix: &str, separator: &str, name: &str) -> String {
    let full = if prefix.is_empty() { name.to_string() } else { format!("{prefix}{separator}{name}") };
    if full.len() <= MAX_TOOL_NAME {
        return full;
    }
    let digest = Sha256::digest(full.as_bytes());
    let suffix = crate::hex::encode(&digest[..4]);
    let mut keep = MAX_TOOL_NAME - suffix.len() - 1;
    while !full.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}_{suffix}", &full[..keep])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_prefixed() {
        assert_eq!(public_name("fs", "__", "read_file"), "fs__read_file");
        assert_eq!(public_name("", "__", "read_file"), "read_file");
    }

    #[test]
    fn long_names_are_cut_stably_within_the_limit() {
        let long = "x".repeat(80);
        let a = public_name("srv", "__", &long);
        assert_eq!(a.len(), MAX_TOOL_NAME);
        assert_eq!(a, public_name("srv", "__", &long));
        assert_ne!(a, public_name("srv", "__", &format!("{long}y")));
    }
}
