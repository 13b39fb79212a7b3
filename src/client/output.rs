//! What the client prints: answers as JSON for scripts (`--json`), and
//! names from the source with terminal control characters escaped.

use serde_json::{Map, Value};

use crate::rpc::xml::Element;

/// Elements that may repeat: always a JSON array, even of one.
const LISTS: &[&str] = &[
    "migration",
    "object",
    "item",
    "line",
    "error",
    "message",
    "tree",
    "database",
    "warning",
    "fs",
];

/// An answer element as JSON: an element with children is an object of
/// them (repeating ones as arrays), a leaf its text, an empty one `true`
/// (`<success/>`).
pub fn to_json(el: &Element) -> Value {
    if el.children.is_empty() {
        return if el.text.is_empty() && el.name == "success" {
            Value::Bool(true)
        } else {
            Value::String(el.text.clone())
        };
    }
    let mut map = Map::new();
    for c in &el.children {
        let value = to_json(c);
        if LISTS.contains(&c.name.as_str()) {
            match map
                .entry(c.name.clone())
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                Value::Array(items) => items.push(value),
                other => *other = Value::Array(vec![other.clone(), value]),
            }
        } else {
            map.insert(c.name.clone(), value);
        }
    }
    Value::Object(map)
}

/// Bytes for people: "812.0 MiB".
pub fn bytes(n: u64) -> String {
    crate::migration::space::shown_bytes(n)
}

/// Text as a terminal may show it: control characters (an escape
/// sequence in a hostile name, say) written as escapes.
pub fn safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_lists_stay_lists() {
        assert_eq!(safe("a\u{1b}[31mb\tc"), "a\\u{1b}[31mb\\tc");
        let el = crate::rpc::xml::parse(
            b"<result><status>ok</status><migration><migration_id>1</migration_id><finished><success/></finished></migration></result>",
        )
        .expect("xml");
        let json = to_json(&el);
        assert_eq!(json["migration"][0]["migration_id"], "1");
        assert_eq!(json["migration"][0]["finished"]["success"], true);
        assert_eq!(json["status"], "ok");
    }
}
