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
/// §4.1 compares them, normalised in ways that cannot change what they
/// mean: lines joined as one list, whitespace around list members removed,
/// and for the fields whose members are case-insensitive tokens with
/// weights (`Accept-Language`, `Accept-Encoding`, `Accept-Charset`) the
/// members lower-cased and sorted (`en, de` and `De, en` ask for the same:
/// the order of members says nothing, their `q` does). None if the request
/// has no such field.
pub fn combined(headers: &Headers, name: &str) -> Option<Vec<u8>> {
    let lines: Vec<&[u8]> = headers.get_all(name).collect();
    if lines.is_empty() {
        return None;
    }
    let joined = lines.join(&b","[..]);
    // A value that is not text is compared as it came.
    let Ok(text) = std::str::from_utf8(&joined) else {
        return Some(joined);
    };
    // Quoted strings may hold commas: such a value is only trimmed.
    if text.contains('"') {
        return Some(text.trim().as_bytes().to_vec());
    }
    let mut members: Vec<String> = text
        .split(',')
        .map(|member| {
            member
                .split(';')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(";")
        })
        .filter(|member| !member.is_empty())
        .collect();
    let weighted = ["accept-language", "accept-encoding", "accept-charset"];
    if weighted
        .iter()
        .any(|field| name.eq_ignore_ascii_case(field))
    {
        for member in &mut members {
            member.make_ascii_lowercase();
        }
        members.sort();
    }
    Some(members.join(", ").into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, value: &str) -> Headers {
        let mut headers = Headers::new();
        headers.append(name, value);
        headers
    }

    #[test]
    fn values_that_mean_the_same_compare_equal() {
        // The cache-tests vary-normalise-* inputs.
        let same = |name: &str, a: &str, b: &str| {
            combined(&one(name, a), name) == combined(&one(name, b), name)
        };
        assert!(same("Foo", "1,2", " 1, 2 "));
        assert!(same("Accept-Language", "en, de", "de, en"));
        assert!(same("Accept-Language", "en, de", "eN, De"));
        assert!(same("Accept-Language", "en, de", " en ,   de"));
        assert!(same("Accept-Encoding", "gzip;q=1.0, br", "br,gzip; q=1.0"));
        // Order and case still matter where they may mean something.
        assert!(!same("Foo", "1, 2", "2, 1"));
        assert!(!same("Foo", "a", "A"));
        assert!(!same("Accept-Language", "en;q=0.5, de", "en, de;q=0.5"));
    }
}
