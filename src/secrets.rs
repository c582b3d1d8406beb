//! Secret references in config (`env:NAME`, `file:PATH`): the config names where a secret is,
//! never the secret, so config files can be shared and logged.
//!
//! [`SecretValue`] is a config value that is either a plain literal or such a reference. It is
//! resolved only when it is used (an upstream connection: a rotated file is picked up on the next
//! reconnect), into a [`Secret`] whose `Debug` never shows the value. Neither type's `Debug` or
//! `Display` prints a value, so a config or an error can be logged whole.

use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// Checks the form of a reference without reading the secret.
pub fn check_reference(reference: &str) -> Result<(), String> {
    match reference.split_once(':') {
        Some(("env", name)) if valid_env_name(name) => Ok(()),
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
        Some(("env", name)) => read_env(name)?,
        Some(("file", path)) => read_file(&absolute(Path::new(path), base))?,
        _ => return Err(format!("{:?} is not a secret reference", shorten(reference))),
    };
    non_empty(value, reference)
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

fn absolute(path: &Path, base: &Path) -> PathBuf {
    if path.is_absolute() { path.to_path_buf() } else { base.join(path) }
}

fn read_env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|e| match e {
        std::env::VarError::NotPresent => format!("environment variable {name} is not set"),
        std::env::VarError::NotUnicode(_) => format!("environment variable {name} is not valid UTF-8"),
    })
}

fn read_file(path: &Path) -> Result<String, String> {
    // The io::Error says why (missing, permissions), never what the file holds.
    std::fs::read_to_string(path).map_err(|e| format!("cannot read secret file {}: {e}", path.display()))
}

fn non_empty(value: String, reference: &str) -> Result<String, String> {
    // A trailing newline from `echo secret > file` is not part of the secret.
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

/// A config value that may name a secret: `env:NAME`, `file:PATH` (relative to the config file),
/// `literal:TEXT` (TEXT as is, for a value that would otherwise read as a reference or a secret),
/// or any other text, taken literally.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum SecretValue {
    /// `marked`: written with the `literal:` prefix, i.e. declared not to be a secret.
    Literal {
        text: String,
        marked: bool,
    },
    Env(String),
    File(PathBuf),
}

impl TryFrom<String> for SecretValue {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        SecretValue::parse(&text)
    }
}

impl SecretValue {
    pub fn parse(text: &str) -> Result<SecretValue, String> {
        if let Some(rest) = text.strip_prefix("literal:") {
            return Ok(SecretValue::Literal { text: rest.to_string(), marked: true });
        }
        if text.starts_with("env:") || text.starts_with("file:") {
            check_reference(text)?;
        }
        Ok(match text.split_once(':') {
            Some(("env", name)) => SecretValue::Env(name.to_string()),
            Some(("file", path)) => SecretValue::File(PathBuf::from(path)),
            _ => SecretValue::literal(text),
        })
    }

    /// A value written out in the config itself (plain or `literal:`).
    pub fn literal(text: impl Into<String>) -> SecretValue {
        SecretValue::Literal { text: text.into(), marked: false }
    }

    pub fn is_reference(&self) -> bool {
        !matches!(self, SecretValue::Literal { .. })
    }

    /// Written with the `literal:` prefix: the config says this value is not a secret.
    pub fn written_as_literal(&self) -> bool {
        matches!(self, SecretValue::Literal { marked: true, .. })
    }

    /// Anchors a relative `file:` path at `base` (the config file's directory), once, at load
    /// time: the gateway's working directory must not decide which file is read.
    pub fn anchor(&mut self, base: &Path) {
        if let SecretValue::File(p) = self {
            *p = absolute(p, base);
        }
    }

    /// Reads the value now. Errors name the reference (`env:NAME`, `file:PATH`), never a value.
    pub fn resolve(&self) -> Result<Secret, String> {
        match self {
            SecretValue::Literal { text, .. } => Ok(Secret(text.clone())),
            SecretValue::Env(name) => non_empty(read_env(name)?, &self.to_string()).map(Secret),
            SecretValue::File(path) => non_empty(read_file(path)?, &self.to_string()).map(Secret),
        }
    }
}

/// Shows where a value comes from, never the value (a literal may still be sensitive).
impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretValue::Literal { .. } => f.write_str("a literal value"),
            SecretValue::Env(name) => write!(f, "env:{name}"),
            SecretValue::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretValue::Literal { text, .. } => write!(f, "Literal(<{} bytes>)", text.len()),
            other => write!(f, "{other}"),
        }
    }
}

/// A resolved value. Only [`Secret::expose`] gives the text, so every place it leaves the
/// process (an HTTP header, a child's environment) is a visible call.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Replaces an upstream's own resolved credentials wherever that upstream echoes them (its
/// replies, notifications, stderr): a server that prints its API key must not hand it to the
/// client or the logs. Matches the raw value and its JSON-escaped form; values shorter than
/// [`Scrubber::MIN_LEN`] are not searched (they would match ordinary text).
#[derive(Debug, Default, Clone)]
pub struct Scrubber {
    needles: Vec<Secret>,
}

impl Scrubber {
    pub const MIN_LEN: usize = 8;
    pub const MARKER: &'static str = "[redacted:upstream-credential]";

    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Scrubber {
        let mut needles = Vec::new();
        for secret in secrets {
            let raw = secret.expose();
            if raw.len() < Self::MIN_LEN {
                continue;
            }
            needles.push(secret.clone());
            // Inside a JSON string the value may be escaped (quotes, backslashes, controls).
            let json = serde_json::to_string(raw).unwrap_or_default();
            let escaped = json.get(1..json.len().saturating_sub(1)).unwrap_or_default();
            if escaped != raw {
                needles.push(Secret(escaped.to_string()));
            }
        }
        // Longest first, so a value that contains another is replaced whole.
        needles.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        needles.dedup();
        Scrubber { needles }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every credential replaced by [`Scrubber::MARKER`]; `None` if none was there.
    pub fn scrub(&self, text: &str) -> Option<String> {
        if !self.needles.iter().any(|n| text.contains(n.expose())) {
            return None;
        }
        let mut out = text.to_string();
        for n in &self.needles {
            out = out.replace(n.expose(), Self::MARKER);
        }
        Some(out)
    }
}

/// Whether a header or environment variable name says it carries a credential. Such names may
/// not take a plain literal in config: the secret would sit in a file meant to be shared.
pub fn names_a_credential(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('-', "_");
    matches!(n.as_str(), "authorization" | "proxy_authorization" | "cookie")
        || ["token", "secret", "password", "passwd", "api_key", "apikey", "access_key", "private_key", "credential"]
            .iter()
            .any(|w| n.contains(w))
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

    #[test]
    fn values_parse_as_literals_or_references() {
        assert_eq!(SecretValue::parse("search").unwrap(), SecretValue::literal("search"));
        assert_eq!(SecretValue::parse("env:API_KEY").unwrap(), SecretValue::Env("API_KEY".into()));
        assert_eq!(SecretValue::parse("file:k.txt").unwrap(), SecretValue::File("k.txt".into()));
        let marked = SecretValue::parse("literal:env:x").unwrap();
        assert_eq!(marked, SecretValue::Literal { text: "env:x".into(), marked: true });
        assert!(marked.written_as_literal() && !SecretValue::literal("x").written_as_literal());
        assert!(SecretValue::parse("env:").is_err());
        assert!(SecretValue::parse("file:").is_err());
        // Only the two prefixes are references: a URL with a colon stays a literal.
        assert_eq!(SecretValue::parse("http://x").unwrap(), SecretValue::literal("http://x"));
    }

    #[test]
    fn debug_and_display_never_show_a_value() {
        let lit = SecretValue::literal("hunter2");
        assert!(!format!("{lit:?} {lit}").contains("hunter2"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k"), "hunter3\n").unwrap();
        let mut file = SecretValue::parse("file:k").unwrap();
        file.anchor(dir.path());
        let secret = file.resolve().unwrap();
        assert_eq!(secret.expose(), "hunter3");
        assert!(!format!("{file:?} {file} {secret:?}").contains("hunter3"));
    }

    #[test]
    fn resolution_reads_the_current_file_and_names_the_reference_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = SecretValue::parse("file:rotating").unwrap();
        v.anchor(dir.path());
        let e = v.resolve().unwrap_err();
        assert!(e.contains("rotating"), "{e}");
        std::fs::write(dir.path().join("rotating"), "one").unwrap();
        assert_eq!(v.resolve().unwrap().expose(), "one");
        std::fs::write(dir.path().join("rotating"), "two").unwrap();
        assert_eq!(v.resolve().unwrap().expose(), "two", "read on every use, not cached");
        std::fs::write(dir.path().join("rotating"), "\n").unwrap();
        assert!(v.resolve().unwrap_err().contains("empty"));
        let e = SecretValue::Env("TOLLGATE_SURELY_UNSET_VAR".into()).resolve().unwrap_err();
        assert!(e.contains("TOLLGATE_SURELY_UNSET_VAR"), "{e}");
    }

    #[test]
    fn scrubbing_replaces_raw_and_json_escaped_credentials() {
        let plain = Secret("s3cr3t-value-123".into());
        let quoted = Secret("pa\"ss\\word-xyz".into());
        let short = Secret("abc".into());
        let s = Scrubber::new([&plain, &quoted, &short]);
        assert_eq!(s.scrub("nothing here"), None);
        let out = s.scrub("key=s3cr3t-value-123; abc").unwrap();
        assert_eq!(out, format!("key={}; abc", Scrubber::MARKER), "short values are left alone");
        let json = serde_json::json!({ "text": quoted.expose() }).to_string();
        let out = s.scrub(&json).unwrap();
        assert!(!out.contains("word-xyz"), "{out}");
        assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok(), "still JSON: {out}");
        assert!(!format!("{s:?}").contains("s3cr3t"));
    }

    #[test]
    fn credential_names_are_recognised() {
        for n in ["Authorization", "cookie", "X-Api-Key", "GITHUB_TOKEN", "DB_PASSWORD", "client-secret"] {
            assert!(names_a_credential(n), "{n}");
        }
        for n in ["X-Team", "NODE_OPTIONS", "LANG", "Accept-Language"] {
            assert!(!names_a_credential(n), "{n}");
        }
    }
}
