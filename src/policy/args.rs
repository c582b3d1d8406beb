//! Argument guards beyond JSON Schema: paths confined to roots, URLs to hosts.
//!
//! Pure: symlinks are resolved by the caller (the layer does the file-system I/O) and the
//! resolved path is checked here again, so a link pointing outside a root is refused too.

use std::path::{Component, Path, PathBuf};

/// Lexically normalises an absolute path; `None` if it is relative, contains NUL, or climbs
/// above the root with `..`.
pub fn normalise(raw: &str) -> Option<PathBuf> {
    let raw = raw.strip_prefix("file://").unwrap_or(raw);
    if raw.contains('\0') || raw.contains('\\') {
        return None;
    }
    // Percent-encoded dots or slashes are a classic way around naive checks: refuse them.
    let lower = raw.to_ascii_lowercase();
    if lower.contains("%2e") || lower.contains("%2f") || lower.contains("%5c") {
        return None;
    }
    let path = Path::new(raw);
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return None,
            Component::Normal(part) => out.push(part),
            Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Is `path` (already normalised) under one of `roots`?
pub fn under_roots(path: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|r| path.starts_with(r))
}

/// Checks one path argument; `Err` says why it is refused.
pub fn check_path(raw: &str, roots: &[PathBuf]) -> Result<PathBuf, String> {
    let path = normalise(raw).ok_or_else(|| {
        format!("{raw:?} is not an absolute, normalised path (no '..', NUL, '\\\\' or percent-encoding)")
    })?;
    if !under_roots(&path, roots) {
        let allowed: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        return Err(format!("{} is outside the allowed roots {}", path.display(), allowed.join(", ")));
    }
    Ok(path)
}

/// Checks one URL argument against allowed hosts (`example.com` or `*.example.com`).
pub fn check_url(raw: &str, hosts: &[String]) -> Result<(), String> {
    let uri: http::Uri = raw.parse().map_err(|_| format!("{raw:?} is not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http") | Some("https")) {
        return Err(format!("{raw:?}: only http and https URLs are allowed"));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(format!("{raw:?}: URLs with credentials are not allowed"));
    }
    let host = uri.host().ok_or_else(|| format!("{raw:?} has no host"))?.to_ascii_lowercase();
    let ok = hosts.iter().any(|h| {
        let h = h.to_ascii_lowercase();
        match h.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => host == h,
        }
    });
    if ok { Ok(()) } else { Err(format!("host {host} is not among the allowed hosts {}", hosts.join(", "))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> Vec<PathBuf> {
        vec![PathBuf::from("/srv/data")]
    }

    #[test]
    fn traversal_and_tricks_are_refused() {
        for bad in [
            "/srv/data/../../etc/passwd",
            "/srv/data-evil/x",
            "/srv/data/%2e%2e/etc",
            "..\\..\\etc",
            "/srv/data/a\0b",
            "file:///etc/shadow",
            "relative/path",
        ] {
            assert!(check_path(bad, &roots()).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(check_path("/srv/data/./a/b.txt", &roots()).unwrap(), PathBuf::from("/srv/data/a/b.txt"));
        assert!(check_path("file:///srv/data/x", &roots()).is_ok());
    }

    #[test]
    fn urls_must_name_an_allowed_host() {
        let hosts = vec!["example.com".to_string(), "*.docs.rs".to_string()];
        assert!(check_url("https://example.com/a", &hosts).is_ok());
        assert!(check_url("https://serde.docs.rs/x", &hosts).is_ok());
        assert!(check_url("https://evil.com/?example.com", &hosts).is_err());
        assert!(check_url("http://example.com.evil.com/", &hosts).is_err());
        assert!(check_url("http://user:pw@example.com/", &hosts).is_err());
        assert!(check_url("file:///etc/passwd", &hosts).is_err());
        assert!(check_url("http://169.254.169.254/latest", &hosts).is_err());
    }
}
