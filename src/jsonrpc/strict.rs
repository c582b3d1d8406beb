//! Strict JSON well-formedness beyond what serde_json checks: duplicate member names and depth.
//!
//! Why: the gateway decides on a parsed value but forwards bytes. If `{"name":"read","name":"delete"}`
//! were accepted, the gateway (serde keeps the last key) and an upstream (which may keep the first)
//! could read different tools from one message. Rejecting duplicates at ingress closes that gap.

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;

/// The deepest nesting accepted. serde_json stops at 128 on its own; we stop earlier and say why.
pub const MAX_DEPTH: usize = 64;

/// Checks `text` is one JSON value with no duplicate member names and at most [`MAX_DEPTH`] levels.
pub fn check(text: &str) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_str(text);
    Walk { depth: 0 }.deserialize(&mut de).and_then(|()| de.end()).map_err(|e| e.to_string())
}

struct Walk {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.depth > MAX_DEPTH {
            return Err(D::Error::custom(format!("JSON nested deeper than {MAX_DEPTH} levels")));
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Walk { depth: self.depth + 1 })?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(A::Error::custom(format!("duplicate member name \"{key}\"")));
            }
            map.next_value_seed(Walk { depth: self.depth + 1 })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_json() {
        assert!(check(r#"{"a":[1,{"b":2}],"c":"x"}"#).is_ok());
    }

    #[test]
    fn rejects_duplicate_keys_at_any_depth() {
        let e = check(r#"{"params":{"name":"read","name":"delete"}}"#).unwrap_err();
        assert!(e.contains("duplicate member name \"name\""), "{e}");
    }

    #[test]
    fn escaped_duplicate_keys_are_duplicates() {
        assert!(check(r#"{"n\u0061me":1,"name":2}"#).is_err());
    }

    #[test]
    fn rejects_deep_nesting() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(check(&deep).unwrap_err().contains("nested deeper"));
    }

    #[test]
    fn rejects_trailing_garbage() {
        assert!(check(r#"{"a":1} x"#).is_err());
    }
}
