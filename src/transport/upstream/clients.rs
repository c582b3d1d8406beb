//! The HTTP clients for Streamable HTTP upstreams: one shared by every upstream that trusts the
//! platform's roots (one connection pool), and one of its own for each upstream with a `ca_file`.
//! None of them ever carries a downstream client's credentials: upstream requests are built from
//! the config alone.

use crate::config::UpstreamConfig;
use crate::transport::client_tls;
use std::collections::HashMap;
use std::time::Duration;

pub struct UpstreamClients {
    shared: reqwest::Client,
    own: HashMap<String, reqwest::Client>,
}

fn builder(ca_file: Option<&std::path::Path>, key: &str) -> Result<reqwest::ClientBuilder, String> {
    Ok(client_tls::builder_with_roots(ca_file, key)?.tcp_nodelay(true).pool_idle_timeout(Duration::from_secs(90)))
}

impl UpstreamClients {
    /// Reads every upstream's `ca_file` now, so a bad one stops the gateway at start.
    pub fn new<'a>(upstreams: impl IntoIterator<Item = &'a UpstreamConfig>) -> Result<UpstreamClients, String> {
        let build = |b: reqwest::ClientBuilder| b.build().map_err(|e| format!("building an upstream HTTP client: {e}"));
        let mut own = HashMap::new();
        for upstream in upstreams {
            if let Some(ca_file) = &upstream.ca_file {
                let key = format!("upstream {:?} ca_file", upstream.name);
                own.insert(upstream.name.clone(), build(builder(Some(ca_file), &key)?)?);
            }
        }
        Ok(UpstreamClients { shared: build(builder(None, "")?)?, own })
    }

    pub fn for_upstream(&self, name: &str) -> &reqwest::Client {
        self.own.get(name).unwrap_or(&self.shared)
    }
}
