//! Tool and upstream name patterns: `*` matches any run of characters, `?` exactly one.
//! Names are matched whole and case-sensitively (MCP tool names are case-sensitive).

pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative wildcard match with one backtrack point: linear in practice, no recursion.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
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
    p[pi..].iter().all(|&c| c == '*')
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
    }
}
