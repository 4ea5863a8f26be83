//! Header fields: an ordered list with case-insensitive names (RFC 9110 §5).

/// One header field: the name as the peer spelled it, the value as raw bytes
/// (RFC 9110 §5.5 allows bytes that are not text, so no UTF-8 is assumed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: Vec<u8>,
}

/// Header fields in the order they arrived. Names compare without regard to
/// case (RFC 9110 §5.1), but keep their spelling so a head is forwarded as
/// it came; a name may appear several times (`Set-Cookie`, `Via`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<Header>,
}

impl Headers {
    pub fn new() -> Headers {
        Headers::default()
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Every field, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.fields.iter()
    }

    /// The value of the first field called `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    /// The value of the first field called `name`, if it is UTF-8 text.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The values of every field called `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Adds a field at the end, after any others of the same name.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.fields.push(Header {
            name: name.into(),
            value: value.into(),
        });
    }

    /// Replaces every field called `name` with one field at the end.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        let name = name.into();
        self.remove(&name);
        self.append(name, value);
    }

    /// Removes every field called `name`; returns how many there were.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        self.fields.retain(|h| !h.name.eq_ignore_ascii_case(name));
        before - self.fields.len()
    }

    /// The elements of the comma-separated list in every field called `name`
    /// (RFC 9110 §5.6.1), whitespace trimmed, empty elements skipped, commas
    /// inside "quoted strings" kept. `Connection: keep-alive, Upgrade` gives
    /// `keep-alive` and `Upgrade`. An element that is not UTF-8 comes out as
    /// "\u{fffd}", which matches no token but still counts (so a
    /// `Transfer-Encoding` cannot hide a coding behind a bad byte).
    pub fn list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name)
            .flat_map(split_list)
            .map(|element| std::str::from_utf8(element).unwrap_or("\u{fffd}"))
    }

    /// True when the list in the fields called `name` has `token`, ignoring
    /// case: `has_token("Connection", "close")`,
    /// `has_token("Cache-Control", "no-cache")`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.list(name).any(|t| t.eq_ignore_ascii_case(token))
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter()
    }
}

/// Splits one field value at the commas that are not inside a quoted
/// string, trims optional whitespace (OWS: spaces and tabs) and drops empty
/// elements, which RFC 9110 §5.6.1 says a recipient must ignore.
fn split_list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut elements = Vec::new();
    let (mut start, mut in_quotes, mut escaped) = (0, false, false);
    for (i, &byte) in value.iter().enumerate() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if in_quotes => escaped = true,
            b'"' => in_quotes = !in_quotes,
            b',' if !in_quotes => {
                elements.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    elements.push(&value[start..]);
    elements
        .into_iter()
        .map(trim_ows)
        .filter(|element| !element.is_empty())
}

pub(super) fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}
