//! `WWW-Authenticate: Bearer …` challenges (RFC 6750 §3, RFC 9728 §5.1): what a refused client
//! reads to learn how to authenticate — where the Protected Resource Metadata is, what went
//! wrong with its token, which scope it lacks.

/// RFC 6750 error codes.
pub const INVALID_REQUEST: &str = "invalid_request";
pub const INVALID_TOKEN: &str = "invalid_token";
pub const INSUFFICIENT_SCOPE: &str = "insufficient_scope";

/// One challenge header value. Parameters that are `None` are left out.
pub fn bearer(
    resource_metadata: Option<&str>,
    error: Option<&str>,
    description: Option<&str>,
    scope: Option<&str>,
) -> String {
    let mut out = String::from("Bearer realm=\"tollgate\"");
    for (name, value) in [
        ("resource_metadata", resource_metadata),
        ("error", error),
        ("error_description", description),
        ("scope", scope),
    ] {
        if let Some(v) = value {
            out.push_str(&format!(", {name}=\"{}\"", quotable(v)));
        }
    }
    out
}

/// A quoted-string value without the characters that would need escaping: clients parse these
/// headers with simple patterns (`name="([^"]+)"`), so nothing here may end a quote early.
fn quotable(value: &str) -> String {
    value.chars().filter(|c| *c != '"' && *c != '\\' && !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_token_gets_only_the_metadata_pointer() {
        assert_eq!(
            bearer(Some("http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp"), None, None, None),
            "Bearer realm=\"tollgate\", resource_metadata=\"http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp\""
        );
    }

    #[test]
    fn errors_scopes_and_descriptions_are_quoted_and_cannot_break_out() {
        let h = bearer(
            Some("https://gw/.well-known/oauth-protected-resource"),
            Some(INVALID_TOKEN),
            Some("the token has \"expired\"\r\n"),
            None,
        );
        assert_eq!(
            h,
            "Bearer realm=\"tollgate\", resource_metadata=\"https://gw/.well-known/oauth-protected-resource\", \
             error=\"invalid_token\", error_description=\"the token has expired\""
        );
        let h = bearer(None, Some(INSUFFICIENT_SCOPE), None, Some("mcp tools:write"));
        assert_eq!(h, "Bearer realm=\"tollgate\", error=\"insufficient_scope\", scope=\"mcp tools:write\"");
        assert!(http::HeaderValue::from_str(&h).is_ok());
    }
}
