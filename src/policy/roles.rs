//! The roles an identity holds, as policy decisions see them: a small sorted set that is cheap
//! to clone into every request and tool call.
//!
//! Roles come from the authenticated identity (API-key config, a JWT claim, or the stdio
//! settings); policy only asks "does this identity hold one of these?".

use std::collections::BTreeSet;
use std::sync::Arc;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles(Arc<BTreeSet<String>>);

impl Roles {
    /// No roles: what anonymous callers and role-less identities hold.
    pub fn none() -> Roles {
        Roles::default()
    }

    pub fn new<I, S>(roles: I) -> Roles
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Roles(Arc::new(roles.into_iter().map(Into::into).filter(|r: &String| !r.is_empty()).collect()))
    }

    pub fn contains(&self, role: &str) -> bool {
        self.0.contains(role)
    }

    /// The first of `wanted` (in the order the policy lists them) that this identity holds; the
    /// rule id names it.
    pub fn first_of<'a>(&self, wanted: &'a [String]) -> Option<&'a str> {
        wanted.iter().find(|r| self.0.contains(r.as_str())).map(String::as_str)
    }

    /// Those of `wanted` this identity lacks.
    pub fn missing<'a>(&self, wanted: &'a [String]) -> Vec<&'a str> {
        wanted.iter().filter(|r| !self.0.contains(r.as_str())).map(String::as_str).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_of_follows_the_policy_order_and_empty_roles_are_dropped() {
        let r = Roles::new(["reader", "", "admin"]);
        assert_eq!(r.to_vec(), ["admin", "reader"]);
        let wanted = vec!["ops".to_string(), "reader".to_string(), "admin".to_string()];
        assert_eq!(r.first_of(&wanted), Some("reader"));
        assert_eq!(r.missing(&wanted), ["ops"]);
        assert_eq!(Roles::none().first_of(&wanted), None);
    }
}
