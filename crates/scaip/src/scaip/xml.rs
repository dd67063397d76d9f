//! Lenient reading of SCAIP's flat XML documents with quick-xml, and strict writing.
//!
//! SCAIP documents are a root (`mrq`/`mrs`) with leaf children and one level of nesting
//! (`lge`). Reading flattens them to `(path, text)` pairs such as `("ref", "A1")` and
//! `("lge/geo", "59.3,18.0")`: namespaces (prefixes, any default `xmlns`) and tag case are
//! ignored, order is free, deeper elements are dropped. The caller interprets the pairs.

use std::borrow::Cow;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use quick_xml::Reader;

/// One element below the root and its trimmed text. The text borrows from the document unless
/// it had to be built (entities, CDATA next to text, line-end normalisation), so reading a
/// request allocates little: this runs for every SCAIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field<'a> {
    /// Lower-case local names joined by `/`, root excluded: `ref`, `lge/geo`.
    pub path: Cow<'static, str>,
    /// Text content with entities resolved, trimmed.
    pub text: Cow<'a, str>,
    /// `path` packed into an integer when it is at most 4 bytes (every SCAIP tag), else
    /// `u32::MAX`: the `<mrq>` builder looks up some twenty tags, and this makes each
    /// comparison one instruction.
    key: u32,
}

impl<'a> Field<'a> {
    pub(crate) fn new(path: Cow<'static, str>, text: Cow<'a, str>) -> Field<'a> {
        Field {
            key: short_key(&path),
            path,
            text,
        }
    }

    /// Whether this field's path is `tag`.
    pub(crate) fn is(&self, tag: &str) -> bool {
        match short_key(tag) {
            u32::MAX => self.path == tag,
            k => self.key == k,
        }
    }
}

/// A string of at most 4 bytes as an integer (tag names hold no NUL, so lengths cannot collide).
fn short_key(s: &str) -> u32 {
    if s.len() > 4 {
        return u32::MAX;
    }
    s.bytes().fold(0, |k, b| (k << 8) | u32::from(b))
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum XmlFail {
    /// Not well-formed XML (or no element at all).
    NotXml(String),
    /// Well-formed, but the root element has another name.
    WrongRoot(String),
}

/// The tags of `<mrq>` and `<mrs>` (and their roots): a known name costs no allocation.
const KNOWN_TAGS: &[&str] = &[
    "mrq", "mrs", "ref", "ver", "mty", "cid", "did", "dty", "dco", "crd", "stc", "stt", "pri",
    "lco", "lge", "geo", "gga", "tim", "hbo", "hbi", "ico", "ite", "lte", "lva", "sco", "ame",
    "cha", "dte", "cve", "snu", "ste", "mre", "cre", "tnu",
];

/// Read the fields of a document whose root must be `root`. On failure the fields read so far
/// are returned too, so that a `ref` seen before the error can still be answered. Reading
/// stops at the end of the root: trailing content is not looked at.
pub(crate) fn read_fields<'a>(xml: &'a str, root: &str) -> (Vec<Field<'a>>, Option<XmlFail>) {
    let mut reader = Reader::from_str(xml);
    // End tags are checked here, against the open element's local name: quick-xml's own check
    // keeps a second copy of every open name.
    reader.config_mut().check_end_names = false;
    let mut fields = Vec::with_capacity(16);
    // Open elements: (lower-case local name, text directly inside it). The root's own text
    // (whitespace between children) is never a field and is not kept.
    let mut stack: Vec<(Cow<'static, str>, Cow<'a, str>)> = Vec::with_capacity(4);
    let mut seen_root = false;
    loop {
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) => return (fields, Some(XmlFail::NotXml(e.to_string()))),
        };
        match event {
            Event::Start(e) => {
                let name = local_lower(e.local_name().as_ref());
                if stack.is_empty() {
                    if name != root {
                        return (fields, Some(XmlFail::WrongRoot(name.into_owned())));
                    }
                    seen_root = true;
                }
                stack.push((name, Cow::Borrowed("")));
            }
            Event::Empty(e) => {
                let name = local_lower(e.local_name().as_ref());
                if stack.is_empty() {
                    if name != root {
                        return (fields, Some(XmlFail::WrongRoot(name.into_owned())));
                    }
                    return (fields, None);
                }
                push_field(&mut fields, &stack, name, Cow::Borrowed(""));
            }
            Event::End(e) => {
                let Some((name, text)) = stack.pop() else {
                    return (fields, Some(XmlFail::NotXml("unmatched end tag".into())));
                };
                if !e
                    .local_name()
                    .as_ref()
                    .eq_ignore_ascii_case(name.as_bytes())
                {
                    let end = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    return (
                        fields,
                        Some(XmlFail::NotXml(format!("<{name}> closed by </{end}>"))),
                    );
                }
                if stack.is_empty() {
                    return (fields, None);
                }
                push_field(&mut fields, &stack, name, text);
            }
            // The root keeps no text (whitespace between its children): not even decoded.
            Event::Text(_) if stack.len() == 1 => {}
            Event::Text(t) => match t.xml10_content() {
                Ok(s) if !stack.is_empty() => append(&mut stack, s),
                Ok(s) if s.trim().is_empty() => {}
                Ok(_) => {
                    return (
                        fields,
                        Some(XmlFail::NotXml("text outside the root".into())),
                    )
                }
                Err(e) => return (fields, Some(XmlFail::NotXml(e.to_string()))),
            },
            Event::CData(c) => match (stack.is_empty(), c.decode()) {
                (false, Ok(s)) => append(&mut stack, s),
                _ => {
                    return (
                        fields,
                        Some(XmlFail::NotXml("misplaced or undecodable CDATA".into())),
                    )
                }
            },
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref().ok().flatten().map(String::from)
                } else {
                    r.decode()
                        .ok()
                        .and_then(|n| resolve_predefined_entity(&n))
                        .map(str::to_owned)
                };
                match (stack.is_empty(), resolved) {
                    (false, Some(s)) => append(&mut stack, Cow::Owned(s)),
                    _ => {
                        return (
                            fields,
                            Some(XmlFail::NotXml("unknown or misplaced entity".into())),
                        )
                    }
                }
            }
            Event::Eof => {
                let why = if seen_root {
                    "unclosed element"
                } else {
                    "no root element"
                };
                return (fields, Some(XmlFail::NotXml(why.into())));
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
}

/// Adds text to the innermost open element (the root keeps none).
fn append<'a>(stack: &mut [(Cow<'static, str>, Cow<'a, str>)], s: Cow<'a, str>) {
    if stack.len() < 2 {
        return;
    }
    if let Some((_, text)) = stack.last_mut() {
        if text.is_empty() {
            *text = s;
        } else {
            text.to_mut().push_str(&s);
        }
    }
}

/// Record a closed element if it is a child or grandchild of the root.
fn push_field<'a>(
    fields: &mut Vec<Field<'a>>,
    parents: &[(Cow<'static, str>, Cow<'a, str>)],
    name: Cow<'static, str>,
    text: Cow<'a, str>,
) {
    let path = match parents.len() {
        1 => name,
        2 => match (&*parents[1].0, &*name) {
            ("lge", "geo") => Cow::Borrowed("lge/geo"),
            ("lge", "gga") => Cow::Borrowed("lge/gga"),
            ("lge", "tim") => Cow::Borrowed("lge/tim"),
            (parent, name) => Cow::Owned(format!("{parent}/{name}")),
        },
        _ => return,
    };
    fields.push(Field::new(path, trim(text)));
}

fn trim(text: Cow<'_, str>) -> Cow<'_, str> {
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) if s.trim().len() == s.len() => Cow::Owned(s),
        Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
    }
}

fn local_lower(name: &[u8]) -> Cow<'static, str> {
    // Every known tag has three lower-case letters: compare them as one integer. `| 0x20`
    // lower-cases an ASCII letter and turns no other byte into one.
    let known = match name {
        [a, b, c] => {
            let key = u32::from_be_bytes([0, a | 0x20, b | 0x20, c | 0x20]);
            KNOWN_TAGS.iter().find(|k| short_key(k) == key)
        }
        _ => None,
    };
    match known {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(String::from_utf8_lossy(name).to_ascii_lowercase()),
    }
}

/// Append `<tag>text</tag>` with text escaped and characters XML cannot carry removed.
pub(crate) fn write_element(out: &mut String, tag: &str, text: &str) {
    out.push('<');
    out.push_str(tag);
    out.push('>');
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // XML 1.0 forbids most control characters even as references; CR would be
            // normalised away by the reader, so it is written as a reference.
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() && (c as u32) < 0x20 => {}
            '\u{FFFE}' | '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &'static str, text: &'static str) -> Field<'static> {
        Field::new(path.into(), text.into())
    }

    #[test]
    fn tag_lookup_matches_only_its_tag() {
        let field = f("ref", "A1");
        assert!(field.is("ref"));
        for other in ["re", "refs", "ref/x", "", "REF", "cid"] {
            assert!(!field.is(other), "{other}");
        }
        let nested = f("lge/geo", "1,2");
        assert!(nested.is("lge/geo") && !nested.is("lge") && !nested.is("geo"));
    }

    #[test]
    fn flattens_with_namespaces_and_entities() {
        let xml = r#"<?xml version="1.0"?><!-- c --><s:MRQ xmlns:s="urn:x" xmlns="urn:y">
            <s:ref> A&amp;1 </s:ref><lge><geo>1,2</geo><deep><x>no</x></deep></lge>
            <empty/><cd><![CDATA[<raw>]]>&#65;</cd></s:MRQ><trailing/>"#;
        let (fields, fail) = read_fields(xml, "mrq");
        assert_eq!(fail, None);
        assert_eq!(
            fields,
            vec![
                f("ref", "A&1"),
                f("lge/geo", "1,2"),
                f("lge/deep", ""),
                f("lge", ""),
                f("empty", ""),
                f("cd", "<raw>A")
            ]
        );
    }

    #[test]
    fn failures_keep_earlier_fields() {
        let cases: &[(&str, &str)] = &[
            ("", "no root"),
            ("not xml", "text outside"),
            ("<mrq><ref>1</ref><cid>2</dty></mrq>", "mismatch"),
            ("<mrq><ref>1</ref><cid>2", "unclosed"),
            ("<mrq><ref>1</ref><x>&bogus;</x></mrq>", "entity"),
        ];
        for (xml, why) in cases {
            let (fields, fail) = read_fields(xml, "mrq");
            assert!(matches!(fail, Some(XmlFail::NotXml(_))), "{why}: {fail:?}");
            if xml.contains("<ref>1</ref>") {
                assert_eq!(fields.first(), Some(&f("ref", "1")), "{why}");
            }
        }
        assert_eq!(
            read_fields("<mrs/>", "mrq").1,
            Some(XmlFail::WrongRoot("mrs".into()))
        );
        assert_eq!(read_fields("<mrq/>", "mrq"), (vec![], None));
    }

    #[test]
    fn escapes_on_write() {
        let mut s = String::new();
        write_element(&mut s, "ste", "a<b>&c\r\n\u{1}é");
        assert_eq!(s, "<ste>a&lt;b&gt;&amp;c&#13;\né</ste>");
        let doc = format!("<r>{s}</r>");
        let (fields, _) = read_fields(&doc, "r");
        assert_eq!(fields[0].text, "a<b>&c\r\né");
    }
}
