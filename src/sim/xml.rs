//! A small XML reader for request bodies (Route 53 restXml) and an XML writer for replies
//! (Route 53 and ELBv2).
//!
//! Requests are small (a change batch, a hosted zone), so they are read into a tree of
//! [`Element`]s with namespaces dropped: AWS matches elements by local name, and so do we.
//! Replies are written with [`XmlWriter`], which escapes every text it is given, so a handler
//! cannot produce malformed XML by forgetting to escape a value.

use quick_xml::Reader;
use quick_xml::events::Event;

use super::wire::xml_escape;

/// One element of a parsed document: its local name, its text and its child elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    /// The element's own text (entities resolved, surrounding whitespace trimmed).
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child with this local name, in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child with this local name.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// Why a request body is not the XML we expect.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("the body is not well-formed XML: {0}")]
    Malformed(String),
    #[error("the body has no root element")]
    Empty,
}

/// Parses a document into its root element.
pub fn parse(body: &[u8]) -> Result<Element, XmlError> {
    let mut reader = Reader::from_reader(body);
    // Open elements; the root stays at the bottom until its end tag.
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| XmlError::Malformed(e.to_string()))?;
        match event {
            Event::Start(start) => stack.push(Element {
                name: local_name(start.local_name().as_ref()),
                ..Element::default()
            }),
            Event::Empty(start) => {
                let element = Element {
                    name: local_name(start.local_name().as_ref()),
                    ..Element::default()
                };
                close(&mut stack, &mut root, element);
            }
            Event::End(_) => {
                let Some(mut element) = stack.pop() else {
                    return Err(XmlError::Malformed("an end tag without a start tag".into()));
                };
                element.text = element.text.trim().to_string();
                close(&mut stack, &mut root, element);
            }
            Event::Text(text) => {
                let text = text
                    .xml_content()
                    .map_err(|e| XmlError::Malformed(e.to_string()))?;
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&text);
                }
            }
            Event::CData(data) => {
                let text = data
                    .decode()
                    .map_err(|e| XmlError::Malformed(e.to_string()))?;
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&text);
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = resolve_reference(&reference)?;
                if let Some(open) = stack.last_mut() {
                    open.text.push(resolved);
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed(format!(
            "the element <{}> is not closed",
            stack.last().map(|e| e.name.as_str()).unwrap_or_default()
        )));
    }
    root.ok_or(XmlError::Empty)
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

fn local_name(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn resolve_reference(reference: &quick_xml::events::BytesRef<'_>) -> Result<char, XmlError> {
    if let Some(c) = reference
        .resolve_char_ref()
        .map_err(|e| XmlError::Malformed(e.to_string()))?
    {
        return Ok(c);
    }
    let name = reference
        .decode()
        .map_err(|e| XmlError::Malformed(e.to_string()))?;
    match name.as_ref() {
        "amp" => Ok('&'),
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "quot" => Ok('"'),
        "apos" => Ok('\''),
        other => Err(XmlError::Malformed(format!("unknown entity &{other};"))),
    }
}

/// Builds an XML reply. Element names are trusted (they are literals in the handlers);
/// text is always escaped.
#[derive(Debug, Default)]
pub struct XmlWriter {
    out: String,
    open: Vec<&'static str>,
}

impl XmlWriter {
    /// Starts a document whose root element carries the service namespace.
    pub fn document(root: &'static str, namespace: &str) -> XmlWriter {
        let mut writer = XmlWriter {
            out: String::from("<?xml version=\"1.0\"?>\n"),
            open: Vec::new(),
        };
        writer
            .out
            .push_str(&format!("<{root} xmlns=\"{}\">", xml_escape(namespace)));
        writer.open.push(root);
        writer
    }

    /// Starts a document whose root element has no namespace (EC2's `<Response>` errors).
    pub fn bare(root: &'static str) -> XmlWriter {
        let mut writer = XmlWriter {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
            open: Vec::new(),
        };
        writer.out.push_str(&format!("<{root}>"));
        writer.open.push(root);
        writer
    }

    /// Opens an element.
    pub fn open(&mut self, name: &'static str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self.open.push(name);
        self
    }

    /// Closes the innermost open element.
    pub fn close(&mut self) -> &mut Self {
        let name = self.open.pop().expect("close matches an open element");
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// Writes `<name>text</name>`.
    pub fn leaf(&mut self, name: &'static str, text: impl AsRef<str>) -> &mut Self {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self.out.push_str(&xml_escape(text.as_ref()));
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// Writes `<name>text</name>` when there is a text.
    pub fn leaf_opt(&mut self, name: &'static str, text: Option<impl AsRef<str>>) -> &mut Self {
        if let Some(text) = text {
            self.leaf(name, text);
        }
        self
    }

    /// Closes every open element and returns the document.
    pub fn finish(mut self) -> String {
        while !self.open.is_empty() {
            self.close();
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_elements_with_namespaces_and_entities() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
  <ChangeBatch><Comment>a &amp; b &#65;</Comment><Changes><Change><Action>UPSERT</Action></Change><Change/></Changes></ChangeBatch>
</ChangeResourceRecordSetsRequest>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "ChangeResourceRecordSetsRequest");
        let batch = root.child("ChangeBatch").unwrap();
        assert_eq!(batch.child_text("Comment"), Some("a & b A"));
        let changes: Vec<_> = batch
            .child("Changes")
            .unwrap()
            .children_named("Change")
            .collect();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].child_text("Action"), Some("UPSERT"));
    }

    #[test]
    fn rejects_broken_documents() {
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a>").is_err());
        assert!(parse(b"").is_err());
    }

    #[test]
    fn writer_escapes_text_and_closes_everything() {
        let mut w = XmlWriter::document("R", "urn:x");
        w.open("A").leaf("B", "x<y&z").close().open("C");
        let text = w.finish();
        assert_eq!(
            text,
            "<?xml version=\"1.0\"?>\n<R xmlns=\"urn:x\"><A><B>x&lt;y&amp;z</B></A><C></C></R>"
        );
    }
}
