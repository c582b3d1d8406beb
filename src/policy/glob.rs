//! Tool and upstream name patterns: `*` matches any run of characters, `?` exactly one.
//! Names are matched whole and case-sensitively (MCP tool names are case-sensitive).

pub fn matches(pattern: &str, name: &str) -> bool {
    // Most patterns are plain names, and most names ASCII: decided on every tool call, several
    // times, so neither allocates.
    if !pattern.contains(['*', '?']) {
        return pattern == name;
    }
    if pattern.is_ascii() && name.is_ascii() {
        return wildcard(pattern.as_bytes(), name.as_bytes(), b'*', b'?');
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    wildcard(&p, &n, '*', '?')
}

/// Iterative wildcard match with one backtrack point: linear in practice, no recursion.
fn wildcard<T: PartialEq + Copy>(p: &[T], n: &[T], any: T, one: T) -> bool {
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == one || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == any {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == any)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards() {
        assert!(matches("*", "anything"));
        assert!(matches("read_*", "read_file"));
        assert!(!matches("read_*", "write_file"));
        assert!(matches("*_file", "read_file"));
        assert!(matches("r?ad", "read"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches("echo", "echo"));
        assert!(!matches("echo", "Echo"));
        assert!(!matches("echo", "echo\u{200b}"));
        // Non-ASCII on either side: `?` is one character, not one byte.
        assert!(matches("caf?", "café"));
        assert!(matches("*é*", "café_au_lait"));
        assert!(!matches("caf?", "cafée"));
        assert!(matches("ü*", "über"));
        assert!(!matches("read_*", ""));
        assert!(matches("*", ""));
    }
}
