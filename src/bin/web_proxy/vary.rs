//! `Vary` (RFC 9111 §4.1): a response that says `Vary: Accept-Encoding`
//! was chosen by the origin from the request's `Accept-Encoding`, so it may
//! answer only a request whose `Accept-Encoding` is the same. The stored
//! entry keeps the values of the named fields, as the origin received
//! them; `Vary: *` (never matched) is refused by `policy::may_store`.

use crate::http::Headers;

/// The request fields a response varies on, by lower-case name, with the
/// request's value of each (None where it had none).
pub type Varying = Vec<(String, Option<Vec<u8>>)>;

/// Records the values of the fields `response`'s `Vary` names, from the
/// request as it was forwarded.
pub fn capture(response: &Headers, forwarded: &Headers) -> Varying {
    response
        .list("Vary")
        .map(|name| (name.to_ascii_lowercase(), combined(forwarded, name)))
        .collect()
}

/// True if `request` has the same values as the stored request in every
/// field the response varies on.
pub fn matches(stored: &Varying, request: &Headers) -> bool {
    stored
        .iter()
        .all(|(name, value)| combined(request, name) == *value)
}

/// All the field lines called `name`, combined into one value as RFC 9111
/// §4.1 compares them (joined by commas, in order); None if there are none.
pub fn combined(headers: &Headers, name: &str) -> Option<Vec<u8>> {
    let mut lines = headers.get_all(name);
    let mut value = lines.next()?.to_vec();
    for line in lines {
        value.extend_from_slice(b", ");
        value.extend_from_slice(line);
    }
    Some(value)
}
