//! The merged view of what several upstreams offer: which public name or uri belongs to which
//! upstream, and under which original name.

use crate::policy::ToolDefinition;
use std::collections::HashMap;
use std::sync::Arc;

/// The list methods the gateway merges across upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

impl ListKind {
    pub fn from_method(method: &str) -> Option<ListKind> {
        Some(match method {
            "tools/list" => ListKind::Tools,
            "prompts/list" => ListKind::Prompts,
            "resources/list" => ListKind::Resources,
            "resources/templates/list" => ListKind::ResourceTemplates,
            _ => return None,
        })
    }
    pub fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Prompts => "prompts/list",
            ListKind::Resources => "resources/list",
            ListKind::ResourceTemplates => "resources/templates/list",
        }
    }
    /// The member of the list result holding the items.
    pub fn key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resourceTemplates",
        }
    }
    /// The server capability that says the upstream has such a list.
    pub fn capability(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources | ListKind::ResourceTemplates => "resources",
        }
    }
    /// Tools and prompts are renamed per upstream; resources keep their uris.
    pub fn renamed(self) -> bool {
        matches!(self, ListKind::Tools | ListKind::Prompts)
    }
    pub fn changed_notification(self) -> &'static str {
        match self {
            ListKind::Tools => "notifications/tools/list_changed",
            ListKind::Prompts => "notifications/prompts/list_changed",
            ListKind::Resources | ListKind::ResourceTemplates => "notifications/resources/list_changed",
        }
    }
}

/// Where a public name leads.
#[derive(Debug, Clone)]
pub struct Route {
    pub slot: usize,
    pub original: String,
    /// For tools: the definition the upstream listed.
    pub tool: Option<Arc<ToolDefinition>>,
}

#[derive(Debug, Default)]
pub struct Catalog {
    names: HashMap<(ListKind, String), Route>,
    /// Tools the policy hides from this session's lists. A call to one still goes through the
    /// policy stack (audited, rate-limited, refused like an unknown tool) instead of stopping
    /// at the catalog, so hidden and unknown tools cannot be told apart and neither goes unrecorded.
    hidden_tools: HashMap<String, Route>,
    uris: HashMap<String, usize>,
}

impl Catalog {
    pub fn clear_slot(&mut self, kind: ListKind, slot: usize) {
        self.names.retain(|(k, _), r| !(*k == kind && r.slot == slot));
        if kind == ListKind::Tools {
            self.hidden_tools.retain(|_, r| r.slot != slot);
        }
        if !kind.renamed() {
            self.uris.retain(|_, s| *s != slot);
        }
    }
    /// Records a name; returns false if another upstream already owns it (first one wins).
    pub fn add_name(&mut self, kind: ListKind, public: String, route: Route) -> bool {
        match self.names.get(&(kind, public.clone())) {
            Some(existing) if existing.slot != route.slot => false,
            _ => {
                self.names.insert((kind, public), route);
                true
            }
        }
    }
    /// Records a tool the policy hides; a listed tool of the same name takes precedence.
    pub fn add_hidden_tool(&mut self, public: String, route: Route) {
        self.hidden_tools.entry(public).or_insert(route);
    }
    pub fn add_uri(&mut self, uri: String, slot: usize) {
        self.uris.entry(uri).or_insert(slot);
    }
    /// Where a public name leads: a listed item, else (tools) a hidden one.
    pub fn route(&self, kind: ListKind, public: &str) -> Option<Route> {
        let listed = self.names.get(&(kind, public.to_string()));
        let hidden = || if kind == ListKind::Tools { self.hidden_tools.get(public) } else { None };
        listed.or_else(hidden).cloned()
    }
    pub fn uri_slot(&self, uri: &str) -> Option<usize> {
        self.uris.get(uri).copied()
    }
}
