//! A small, hostile-input-safe XML reader: bytes in, a tree of elements out.
//!
//! quick-xml tokenises; this module enforces what a packet may contain before
//! any of it is interpreted: valid UTF-8, only XML characters, no DOCTYPE, no
//! processing instructions, no entities beyond the five predefined ones and
//! character references, at most [`MAX_DEPTH`] levels and [`MAX_ELEMENTS`]
//! elements, one root, nothing after it. It never panics on any input.

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::Reader;

/// Deepest nesting a packet may have; the deepest valid packet has 9 levels.
pub const MAX_DEPTH: usize = 64;
/// Most elements a packet may have; a start of 1,000 domains stays far below.
pub const MAX_ELEMENTS: usize = 50_000;

/// One element: its name, attributes, child elements and character data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// All character data directly inside this element (text, CDATA,
    /// resolved references), concatenated.
    pub text: String,
}

/// Why a body is not an acceptable XML document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("the packet is empty")]
    Empty,
    #[error("the packet is not valid UTF-8 (byte {offset})")]
    NotUtf8 { offset: usize },
    #[error("the packet contains a character that XML forbids (U+{code:04X} at byte {offset})")]
    IllegalChar { code: u32, offset: usize },
    #[error("the XML declaration names encoding {0}; only UTF-8 is accepted")]
    Encoding(String),
    #[error("DOCTYPE declarations are not accepted")]
    Doctype,
    #[error("processing instructions are not accepted")]
    ProcessingInstruction,
    #[error("entity reference &{0}; is not accepted; only &amp; &lt; &gt; &quot; &apos; and character references are")]
    Entity(String),
    #[error("the packet is nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("the packet has more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    #[error("the packet ends before its root element is closed")]
    Truncated,
    #[error("the packet has no root element")]
    NoRoot,
    #[error("content after the root element is not accepted")]
    TrailingContent,
    #[error("malformed XML: {0}")]
    Malformed(String),
}

/// Parses a whole document and returns its root element.
pub fn parse(body: &[u8]) -> Result<Element, XmlError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(XmlError::Empty);
    }
    let text = std::str::from_utf8(body).map_err(|e| XmlError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    check_chars(text)?;

    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.check_comments = true;
    config.expand_empty_elements = false;
    config.trim_text(false);

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    let mut first = true;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| XmlError::Malformed(short(&e.to_string())))?;
        let was_first = std::mem::replace(&mut first, false);
        match event {
            Event::Decl(decl) => {
                if !was_first {
                    return Err(XmlError::Malformed(
                        "the XML declaration must come first".into(),
                    ));
                }
                check_declaration(&decl)?;
            }
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::PI(_) => return Err(XmlError::ProcessingInstruction),
            Event::Comment(_) => {}
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(XmlError::TrailingContent);
            }
            Event::Start(start) => {
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(XmlError::TooManyElements);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                stack.push(element(&start)?);
            }
            Event::Empty(start) => {
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(XmlError::TooManyElements);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                let el = element(&start)?;
                close(&mut stack, &mut root, el);
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError::Malformed("unmatched end tag".into()))?;
                close(&mut stack, &mut root, el);
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                if content.contains("]]>") {
                    return Err(XmlError::Malformed(
                        "the sequence ]]> is not allowed in text".into(),
                    ));
                }
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&content),
                    None if content.chars().all(is_xml_space) => {}
                    None if root.is_some() => return Err(XmlError::TrailingContent),
                    None => {
                        return Err(XmlError::Malformed("text outside the root element".into()))
                    }
                }
            }
            Event::CData(c) => match stack.last_mut() {
                Some(el) => el.text.push_str(&c.xml10_content()),
                None if root.is_some() => return Err(XmlError::TrailingContent),
                None => return Err(XmlError::Malformed("CDATA outside the root element".into())),
            },
            Event::GeneralRef(r) => {
                let ch = resolve(&r)?;
                match stack.last_mut() {
                    Some(el) => el.text.push(ch),
                    None if root.is_some() => return Err(XmlError::TrailingContent),
                    None => {
                        return Err(XmlError::Malformed(
                            "a reference outside the root element".into(),
                        ))
                    }
                }
            }
            Event::Eof => {
                if !stack.is_empty() {
                    return Err(XmlError::Truncated);
                }
                return root.ok_or(XmlError::NoRoot);
            }
        }
    }
}

/// `<?xml version="1.x" encoding="UTF-8" standalone="yes"?>`, strictly:
/// quick-xml does not check the declaration's grammar.
fn check_declaration(text: &str) -> Result<(), XmlError> {
    let bad = || XmlError::Malformed("malformed XML declaration".into());
    let mut rest = text.strip_prefix("xml").ok_or_else(bad)?;
    let mut seen = Vec::new();
    loop {
        let trimmed = rest.trim_start_matches(is_xml_space);
        if trimmed.is_empty() {
            break;
        }
        if trimmed.len() == rest.len() {
            return Err(bad());
        }
        let eq = trimmed.find('=').ok_or_else(bad)?;
        let name = trimmed[..eq].trim_end_matches(is_xml_space);
        let after = trimmed[eq + 1..].trim_start_matches(is_xml_space);
        let quote = after
            .chars()
            .next()
            .filter(|c| matches!(c, '"' | '\''))
            .ok_or_else(bad)?;
        let end = after[1..].find(quote).ok_or_else(bad)? + 1;
        let value = &after[1..end];
        rest = &after[end + 1..];
        let valid = match name {
            "version" => {
                seen.is_empty()
                    && value
                        .strip_prefix("1.")
                        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            }
            "encoding" => {
                if seen != ["version"] {
                    return Err(bad());
                }
                if !value.eq_ignore_ascii_case("utf-8") && !value.eq_ignore_ascii_case("utf8") {
                    return Err(XmlError::Encoding(short(value)));
                }
                true
            }
            "standalone" => {
                seen.first() == Some(&"version")
                    && !seen.contains(&"standalone")
                    && matches!(value, "yes" | "no")
            }
            _ => false,
        };
        if !valid {
            return Err(bad());
        }
        seen.push(name);
    }
    if seen.first() != Some(&"version") {
        return Err(bad());
    }
    Ok(())
}

fn close(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

fn element(start: &BytesStart<'_>) -> Result<Element, XmlError> {
    let name = start.name().as_ref().to_owned();
    if !is_name(&name) {
        return Err(XmlError::Malformed(format!(
            "invalid element name {}",
            short(&name)
        )));
    }
    let mut attrs = Vec::new();
    for attr in start.attributes().with_checks(true) {
        let attr = attr.map_err(|e| XmlError::Malformed(short(&e.to_string())))?;
        if attr.value.contains('<') {
            return Err(XmlError::Malformed(
                "< is not allowed in an attribute value".into(),
            ));
        }
        let key = attr.key.as_ref().to_owned();
        if !is_name(&key) {
            return Err(XmlError::Malformed(format!(
                "invalid attribute name {}",
                short(&key)
            )));
        }
        let value =
            attr.normalized_value_with(quick_xml::XmlVersion::Implicit1_0, 1, predefined)
                .map_err(|e| match e {
                    quick_xml::Error::Escape(
                        quick_xml::escape::EscapeError::UnrecognizedEntity(_, ent),
                    ) => XmlError::Entity(short(&ent)),
                    other => XmlError::Malformed(short(&other.to_string())),
                })?
                .into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

fn resolve(r: &BytesRef<'_>) -> Result<char, XmlError> {
    if r.is_char_ref() {
        let ch = r
            .resolve_char_ref()
            .map_err(|_| {
                XmlError::Malformed(format!("invalid character reference &{};", short(r)))
            })?
            .ok_or_else(|| XmlError::Malformed("invalid character reference".into()))?;
        if !is_xml_char(ch) {
            return Err(XmlError::IllegalChar {
                code: ch as u32,
                offset: 0,
            });
        }
        return Ok(ch);
    }
    predefined(r)
        .and_then(|s| s.chars().next())
        .ok_or_else(|| XmlError::Entity(short(r)))
}

fn predefined(name: &str) -> Option<&'static str> {
    match name {
        "amp" => Some("&"),
        "lt" => Some("<"),
        "gt" => Some(">"),
        "quot" => Some("\""),
        "apos" => Some("'"),
        _ => None,
    }
}

fn check_chars(text: &str) -> Result<(), XmlError> {
    match text.char_indices().find(|&(_, c)| !is_xml_char(c)) {
        Some((offset, c)) => Err(XmlError::IllegalChar {
            code: c as u32,
            offset,
        }),
        None => Ok(()),
    }
}

/// The `Char` production of XML 1.0.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// XML white space: what may stand between elements.
pub fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// A conservative `Name` check: quick-xml leaves names to its callers.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let start = |c: char| c.is_alphabetic() || c == '_' || c == ':';
    start(first) && chars.all(|c| start(c) || c.is_alphanumeric() || matches!(c, '-' | '.'))
}

/// Cuts a value echoed into an error text to a readable length.
pub fn short(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, XmlError>) {
        let got = parse(input.as_bytes()).map(|el| render(&el));
        assert_eq!(got, expected.map(str::to_owned), "input: {input:?}");
    }

    /// A compact rendering of the tree: name[attr=value](children)"text".
    fn render(el: &Element) -> String {
        let mut s = el.name.clone();
        for (k, v) in &el.attrs {
            s.push_str(&format!("[{k}={v}]"));
        }
        if !el.children.is_empty() {
            let kids: Vec<String> = el.children.iter().map(render).collect();
            s.push_str(&format!("({})", kids.join(",")));
        }
        if !el.text.trim().is_empty() {
            s.push_str(&format!("{:?}", el.text.trim()));
        }
        s
    }

    #[test]
    fn accepts_plain_documents() {
        check("<a/>", Ok("a"));
        check(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a v=\"1\"><b>x</b><c/></a>\n",
            Ok("a[v=1](b\"x\",c)"),
        );
        check("\u{FEFF}<a/>", Ok("a"));
        check(
            "<!-- hi --><a><!-- c --><b>&lt;&amp;&#65;&#x42;</b></a><!-- end -->",
            Ok("a(b\"<&AB\")"),
        );
        check("<a><![CDATA[<x>]]></a>", Ok("a\"<x>\""));
        check("<a v='&quot;'/>", Ok("a[v=\"]"));
    }

    #[test]
    fn refuses_hostile_documents() {
        check("", Err(XmlError::Empty));
        check("  \n", Err(XmlError::Empty));
        check(
            "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
            Err(XmlError::Doctype),
        );
        check("<a>&x;</a>", Err(XmlError::Entity("x".into())));
        check("<a v=\"&x;\"/>", Err(XmlError::Entity("x".into())));
        check("<?php echo 1 ?><a/>", Err(XmlError::ProcessingInstruction));
        check("<a/><b/>", Err(XmlError::TrailingContent));
        check("<a/>junk", Err(XmlError::TrailingContent));
        check(
            "<a><b></a>",
            Err(XmlError::Malformed(
                "ill-formed document: expected `</b>`, but `</a>` was found".into(),
            )),
        );
        check("<a><b>", Err(XmlError::Truncated));
        check(
            "<a>\u{1}</a>",
            Err(XmlError::IllegalChar { code: 1, offset: 3 }),
        );
        check(
            "<a>&#1;</a>",
            Err(XmlError::IllegalChar { code: 1, offset: 0 }),
        );
        check(
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>",
            Err(XmlError::Encoding("ISO-8859-1".into())),
        );
        check(
            " <?xml version=\"1.0\"?><a/>",
            Err(XmlError::Malformed(
                "the XML declaration must come first".into(),
            )),
        );
        check(
            "text<a/>",
            Err(XmlError::Malformed("text outside the root element".into())),
        );
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        check(&deep, Err(XmlError::TooDeep));
        let ok = "<a>".repeat(MAX_DEPTH) + &"</a>".repeat(MAX_DEPTH);
        assert!(parse(ok.as_bytes()).is_ok());
        assert_eq!(parse(b"<a>\xff</a>"), Err(XmlError::NotUtf8 { offset: 3 }));
    }
}
