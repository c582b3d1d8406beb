//! Secret references in config (`env:NAME`, `file:PATH`): the config names where a secret is,
//! never the secret, so config files can be shared and logged.

use std::path::Path;

/// Checks the form of a reference without reading the secret.
pub fn check_reference(reference: &str) -> Result<(), String> {
    match reference.split_once(':') {
        Some(("env", name)) if !name.is_empty() => Ok(()),
        Some(("file", path)) if !path.is_empty() => Ok(()),
        _ => Err(format!(
            "{:?} is not a secret reference; write \"env:NAME\" (an environment variable) or \"file:PATH\"",
            shorten(reference)
        )),
    }
}

/// Reads the secret a reference points at (`base` resolves relative file paths). Errors name the
/// reference, never the value.
pub fn resolve(reference: &str, base: &Path) -> Result<String, String> {
    check_reference(reference)?;
    let value = match reference.split_once(':') {
        Some(("env", name)) => std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?,
        Some(("file", path)) => {
            let p = Path::new(path);
            let p = if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
            std::fs::read_to_string(&p).map_err(|e| format!("cannot read secret file {}: {e}", p.display()))?
        }
        _ => unreachable!("checked above"),
    };
    let value = value.trim().to_string();
    if value.is_empty() {
        return Err(format!("{reference} is empty"));
    }
    Ok(value)
}

/// Enough of a mistaken value to recognise it, not enough to leak it.
fn shorten(s: &str) -> String {
    let head: String = s.chars().take(4).collect();
    if s.chars().count() > 4 { format!("{head}…") } else { head }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_literal_secret_is_refused_without_echoing_it() {
        let e = check_reference("hunter2-very-secret").unwrap_err();
        assert!(!e.contains("very-secret"), "{e}");
        assert!(e.contains("env:NAME"));
    }

    #[test]
    fn file_references_resolve_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "abc\n").unwrap();
        assert_eq!(resolve("file:tok", dir.path()).unwrap(), "abc");
        assert!(resolve("env:TOLLGATE_SURELY_UNSET_VAR", dir.path()).unwrap_err().contains("not set"));
    }
}
