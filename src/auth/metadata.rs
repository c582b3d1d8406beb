//! RFC 9728 Protected Resource Metadata: the public document that tells an MCP client which
//! authorization server issues tokens for this gateway, and the URLs it is served at.
//!
//! Everything here comes from the config (the resource URL, the issuer), never from a request's
//! `Host` header, so a client cannot make the gateway advertise another resource.

/// RFC 9728 §3: the well-known prefix; the resource's path (if any) is appended to it.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

#[derive(Debug, Clone)]
pub struct ResourceMetadata {
    /// This gateway's resource identifier (the audience its tokens carry).
    pub resource: String,
    /// Where the document is: the `resource_metadata` of every challenge.
    pub url: String,
    /// Paths on this listener that serve it (path-suffixed and root).
    pub paths: Vec<String>,
    /// The JSON document.
    pub document: String,
}

impl ResourceMetadata {
    /// `server_path` is the MCP path this listener serves (it may differ from the resource's
    /// path behind a reverse proxy; both are served).
    pub fn new(
        resource: &str,
        server_path: &str,
        authorization_servers: &[String],
        scopes: &[String],
    ) -> ResourceMetadata {
        let (origin, path) = split(resource);
        let suffix =
            |p: &str| if p.is_empty() || p == "/" { WELL_KNOWN.to_string() } else { format!("{WELL_KNOWN}{p}") };
        let mut paths = vec![suffix(path), suffix(server_path), WELL_KNOWN.to_string()];
        paths.dedup();
        paths.sort();
        paths.dedup();
        let mut doc = serde_json::json!({
            "resource": resource,
            "authorization_servers": authorization_servers,
            "bearer_methods_supported": ["header"],
            "resource_name": "Tollgate MCP gateway",
        });
        if !scopes.is_empty() {
            doc["scopes_supported"] = serde_json::json!(scopes);
        }
        ResourceMetadata {
            resource: resource.to_string(),
            url: format!("{origin}{}", suffix(path)),
            paths,
            document: doc.to_string(),
        }
    }
}

/// `https://host:port/some/path?q` → (`https://host:port`, `/some/path`).
fn split(resource: &str) -> (&str, &str) {
    let after_scheme = resource.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = resource[after_scheme..].find('/').map(|i| i + after_scheme).unwrap_or(resource.len());
    let rest = &resource[path_start..];
    let path_end = rest.find(['?', '#']).unwrap_or(rest.len());
    (&resource[..path_start], &rest[..path_end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_the_resource_and_its_authorization_servers() {
        let m = ResourceMetadata::new(
            "https://mcp.example.com/mcp",
            "/mcp",
            &["https://as.example.com".into()],
            &["mcp".into()],
        );
        assert_eq!(m.url, "https://mcp.example.com/.well-known/oauth-protected-resource/mcp");
        assert_eq!(m.paths, ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]);
        let doc: serde_json::Value = serde_json::from_str(&m.document).unwrap();
        assert_eq!(doc["resource"], "https://mcp.example.com/mcp");
        assert_eq!(doc["authorization_servers"], serde_json::json!(["https://as.example.com"]));
        assert_eq!(doc["bearer_methods_supported"], serde_json::json!(["header"]));
        assert_eq!(doc["scopes_supported"], serde_json::json!(["mcp"]));
    }

    #[test]
    fn root_resources_and_proxied_paths() {
        let m = ResourceMetadata::new("https://mcp.example.com", "/mcp", &["https://as".into()], &[]);
        assert_eq!(m.url, "https://mcp.example.com/.well-known/oauth-protected-resource");
        assert!(m.paths.contains(&"/.well-known/oauth-protected-resource/mcp".to_string()));
        assert!(!m.document.contains("scopes_supported"));
        let m = ResourceMetadata::new("https://gw.example/tools/mcp?x=1", "/mcp", &["https://as".into()], &[]);
        assert_eq!(m.url, "https://gw.example/.well-known/oauth-protected-resource/tools/mcp");
        assert_eq!(m.paths.len(), 3);
    }
}
