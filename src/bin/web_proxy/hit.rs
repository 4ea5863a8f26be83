//! Answering from the cache: the stored response with its `Age` (RFC 9111
//! §5.1), a `304` when the client's own conditional matches it (§4.3.2),
//! or the part a `Range` request asks for (`206`, RFC 9110 §14).

use std::io::Write;
use std::sync::Arc;
use std::time::SystemTime;

use crate::entry::Entry;
use crate::fields::connection_field;
use crate::http::{RequestHead, ResponseHead, Version};
use crate::policy;
use crate::proxy::{Client, Outcome, Proxy};

/// Answers from a stored response: 304 if the client's own conditional
/// matches it (RFC 9111 §4.3.2), the part a `Range` asks for (206),
/// otherwise the stored status, fields and body; each with `Age` (§5.1).
pub fn serve(
    client: &mut Client,
    request: &RequestHead,
    entry: &Arc<Entry>,
    log: &'static str,
    cache_status: &str,
    proxy: &Proxy,
) -> Outcome {
    let keep_alive = request.keep_alive();
    let inm = request.headers.get_str("If-None-Match");
    let ims = request.headers.get_str("If-Modified-Since");
    let conditional = policy::not_modified(inm, ims, &entry.facts) && entry.head.status == 200;
    let range = match conditional {
        false => wanted_range(request, entry),
        true => None,
    };
    let (mut head, body) = match (conditional, range) {
        (true, _) => (not_modified(entry), &[][..]),
        (false, Some((first, last))) => (partial(entry, first, last), &entry.body[first..=last]),
        (false, None) => (entry.head.clone(), &entry.body[..]),
    };
    head.version = Version::Http11;
    let age = entry.age(SystemTime::now()).as_secs();
    head.headers.set("Age", age.to_string());
    head.headers.append("Via", proxy.via(entry.head.version));
    head.headers.append("Cache-Status", cache_status);
    if !conditional {
        head.headers
            .append("Content-Length", body.len().to_string());
    }
    connection_field(&mut head, request.version, keep_alive);
    let body = match request.method == "HEAD" {
        true => &[][..],
        false => body,
    };
    // Head and body in one write: a small hit leaves in one TCP segment.
    let mut bytes = head.to_bytes();
    bytes.extend_from_slice(body);
    let sent = client.writer.write_all(&bytes).is_ok();
    Outcome {
        status: head.status,
        cache: log,
        bytes: if sent { body.len() as u64 } else { 0 },
        keep_alive: keep_alive && sent,
    }
}

/// A 304 for the client's own conditional: the stored fields a 304 carries
/// (RFC 9110 §15.4.5), and no body.
fn not_modified(entry: &Entry) -> ResponseHead {
    let mut head = ResponseHead::new(304, "Not Modified");
    for name in [
        "Cache-Control",
        "Content-Location",
        "Date",
        "ETag",
        "Expires",
        "Last-Modified",
        "Vary",
    ] {
        for value in entry.head.headers.get_all(name) {
            head.headers.append(name, value.to_vec());
        }
    }
    head
}

/// A 206 for bytes `first..=last` of the stored body (RFC 9110 §15.3.7).
fn partial(entry: &Entry, first: usize, last: usize) -> ResponseHead {
    let mut head = entry.head.clone();
    head.status = 206;
    head.reason = "Partial Content".into();
    let total = entry.body.len();
    head.headers
        .set("Content-Range", format!("bytes {first}-{last}/{total}"));
    head
}

/// The one byte range a GET asks for of a stored 200, if it can be served
/// (RFC 9110 §14.2): `bytes=0-99`, `bytes=100-`, `bytes=-50`. Several
/// ranges, an `If-Range`, or a range past the end: the whole response
/// instead, which a server may always send.
fn wanted_range(request: &RequestHead, entry: &Entry) -> Option<(usize, usize)> {
    if request.method != "GET" || entry.head.status != 200 || request.headers.contains("If-Range") {
        return None;
    }
    let spec = request.headers.get_str("Range")?.trim();
    let (unit, set) = spec.split_once('=')?;
    byte_range(unit, set, entry.body.len())
}

fn byte_range(unit: &str, set: &str, len: usize) -> Option<(usize, usize)> {
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') || len == 0 {
        return None;
    }
    let (first, last) = set.trim().split_once('-')?;
    let number = |text: &str| -> Option<usize> {
        let text = text.trim();
        match !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            true => text.parse().ok(),
            false => None,
        }
    };
    let (first, last) = match (first.trim().is_empty(), last.trim().is_empty()) {
        // `-50`: the last 50 bytes.
        (true, false) => (len.saturating_sub(number(last)?.min(len)), len - 1),
        (false, true) => (number(first)?, len - 1),
        (false, false) => (number(first)?, number(last)?.min(len - 1)),
        (true, true) => return None,
    };
    (first <= last && first < len).then_some((first, last))
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn byte_ranges_of_a_stored_body() {
        for (set, len, range) in [
            ("0-1", 11, Some((0, 1))),
            ("5-", 11, Some((5, 10))),
            ("-3", 11, Some((8, 10))),
            ("-30", 11, Some((0, 10))),
            ("3-300", 11, Some((3, 10))),
            // Unsatisfiable or not ours to split: the whole response.
            ("11-", 11, None),
            ("4-2", 11, None),
            ("0-1,3-4", 11, None),
            ("-", 11, None),
            ("x-1", 11, None),
            ("0-1", 0, None),
        ] {
            assert_eq!(byte_range("bytes", set, len), range, "{set} of {len}");
        }
        assert_eq!(byte_range("items", "0-1", 11), None);
    }
}
