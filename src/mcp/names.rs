//! Namespacing of tool and prompt names across upstreams.
//!
//! A public name is `prefix + separator + name` (or just `name` when the prefix is empty), never
//! longer than MCP's 64-character limit: a name that would be longer is cut and given a short,
//! stable digest suffix, so it is the same on every listing and on every replica.

use sha2::{Digest, Sha256};

pub const MAX_TOOL_NAME: usize = 64;

/// Is `name` a tool name MCP allows (1–128 characters of `A-Z a-z 0-9 _ - .`)? Anything else
/// — look-alike letters from other scripts, invisible or bidi characters, spaces — can make one
/// tool pass for another in front of a person or a model, so such tools are not offered.
pub fn is_valid_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

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
    fn tool_names_outside_the_mcp_alphabet_are_invalid() {
        for ok in ["read_file", "get-sum", "v1.search", &"a".repeat(128)] {
            assert!(is_valid_tool_name(ok), "{ok}");
        }
        for bad in ["", "delete_f\u{456}le", "delete_file\u{200b}", "rm file", "a/b", &"a".repeat(129)] {
            assert!(!is_valid_tool_name(bad), "{bad:?}");
        }
    }

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
