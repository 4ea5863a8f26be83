//! Which header fields go on to the next hop. A proxy joins two
//! connections, and some fields speak about one connection only (RFC 9110
//! §7.6.1): `Connection` and the fields it names, `Keep-Alive`, `TE`,
//! `Upgrade`, the framing fields. They are removed from everything
//! forwarded, and the proxy writes its own for each side.

use crate::http::{Header, Headers, RequestHead, ResponseHead, Version};

/// Fields that describe one connection, never forwarded (RFC 9110 §7.6.1),
/// and the framing fields, which the proxy writes itself.
pub const HOP_BY_HOP: [&str; 11] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "content-length",
    // Handled by the proxy: it answers `Expect: 100-continue` itself.
    "expect",
];

/// The fields of a message that go on to the next hop: everything except
/// the hop-by-hop fields and those that `Connection` names.
pub fn end_to_end(headers: &Headers) -> impl Iterator<Item = &Header> {
    let named: Vec<String> = headers
        .list("Connection")
        .map(str::to_ascii_lowercase)
        .collect();
    headers.iter().filter(move |field| {
        let name = field.name.to_ascii_lowercase();
        !HOP_BY_HOP.contains(&name.as_str()) && !named.contains(&name)
    })
}

/// Says whether the connection stays open (RFC 9112 §9.3): HTTP/1.1
/// persists unless told `close`; an HTTP/1.0 client persists only when
/// told `keep-alive`.
pub fn connection_field(head: &mut ResponseHead, client: Version, keep_alive: bool) {
    match (keep_alive, client) {
        (false, _) => head.headers.append("Connection", "close"),
        (true, Version::Http10) => head.headers.append("Connection", "keep-alive"),
        (true, Version::Http11) => {}
    }
}

/// Collects fields into a [`Headers`] (kept in their order).
pub trait CollectHeaders {
    fn collect_headers(self) -> Headers;
}

impl<I: Iterator<Item = Header>> CollectHeaders for I {
    fn collect_headers(self) -> Headers {
        let mut headers = Headers::new();
        for field in self {
            headers.append(field.name, field.value);
        }
        headers
    }
}

/// The request's fields as the origin sees them. `Vary` is about these
/// (RFC 9111 §4.1): a field the client named in `Connection` never reached
/// the origin, so its value must not pick the stored variant.
pub fn forwarded_fields(request: &RequestHead) -> Headers {
    end_to_end(&request.headers).cloned().collect_headers()
}
