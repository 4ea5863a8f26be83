//! One request through the proxy: check it, answer it from the cache if a
//! stored response may be used, otherwise send it to the origin (as a
//! conditional request when a stale stored response can be revalidated)
//! and relay the response back, storing a copy when RFC 9111 allows.
//!
//! The client's request arrives in absolute-form (`GET http://host/path
//! HTTP/1.1`, RFC 9112 §3.2.2) and leaves in origin-form (`GET /path`, with
//! `Host: host`). Both messages are re-framed: the proxy decides the length
//! of what it sends itself, so it removes the hop-by-hop fields (RFC 9110
//! §7.6.1), which concern one connection only, and writes its own.

use std::io::Write;
use std::sync::Arc;
use std::time::SystemTime;

use crate::cache::Cache;
use crate::cache_status::{StorePlan, client_forced, pragma_no_cache, request_cache_control};
use crate::entry::Entry;
use crate::fields::{CollectHeaders, end_to_end, forwarded_fields};
use crate::http::{BodyLength, HttpUrl, RequestHead, ResponseHead, UrlError, Version};
use crate::policy::{self, Reuse};
use crate::proxy::{Client, Outcome, Proxy, Refusal, refuse, send_error};
use crate::stale::{self, Revalidation};
use crate::{hit, origin, relay};

/// Serves one request whose head has been read; the body, if any, is
/// still in `client.reader`.
pub fn exchange(client: &mut Client, request: &RequestHead, proxy: &Proxy) -> Outcome {
    match try_exchange(client, request, proxy) {
        Ok(outcome) => outcome,
        Err(refusal) => {
            // Whatever the origin connection was in the middle of is unusable.
            client.origin = None;
            let bytes =
                send_error(&mut client.writer, refusal.status, refusal.message, proxy).unwrap_or(0);
            Outcome {
                status: refusal.status,
                cache: "NONE",
                bytes,
                keep_alive: false,
            }
        }
    }
}

fn try_exchange(
    client: &mut Client,
    request: &RequestHead,
    proxy: &Proxy,
) -> Result<Outcome, Refusal> {
    let (url, body) = check_request(request, proxy)?;
    let key = cache_key(&url);
    let cache = proxy
        .cache
        .as_ref()
        .filter(|_| cacheable_request(request, body));
    let lookup = match look_up(cache, &key, request) {
        Found::Fresh(entry, ttl) => {
            let status = format!("{}; hit; ttl={ttl}", proxy.name);
            return Ok(hit::serve(client, request, &entry, "HIT", &status, proxy));
        }
        Found::WhileRevalidating(entry) => {
            return Ok(while_revalidating(
                client, request, entry, &url, body, cache, proxy,
            ));
        }
        Found::Other(lookup) => lookup,
    };
    // §5.2.1.7: the client wants no traffic to the origin at all.
    if request_cache_control(&request.headers).only_if_cached {
        return Err(refuse(504, "only-if-cached, and no fresh stored response"));
    }
    let outgoing = origin_request(request, &url, body, lookup.revalidating.as_deref(), proxy);
    continue_if_expected(client, request, body);
    let request_time = SystemTime::now();
    let forward_interim = request.version == Version::Http11;
    let mut response =
        match origin::send_to_origin(client, &url, &outgoing, body, forward_interim, proxy) {
            Ok(response) => response,
            Err(refusal) => {
                return stale::if_disconnected(client, request, lookup.stale, refusal, proxy);
            }
        };
    let times = (request_time, SystemTime::now());
    relay::date_if_missing(&mut response, times.1);
    if let (Some(entry), 304) = (&lookup.revalidating, response.status) {
        let refreshed = Refreshed { entry, times, key };
        return Ok(revalidated(
            client, request, &response, refreshed, cache, proxy,
        ));
    }
    invalidate(proxy, request, &response, &url, &key);
    let was_stale = lookup.revalidating.is_some();
    let plan = StorePlan::decide(
        cache.is_some(),
        request,
        &response,
        was_stale,
        lookup.vary_miss,
    );
    Ok(relay::relay(
        client, request, response, plan, key, times, proxy,
    ))
}

/// Answers with a stale response within its `stale-while-revalidate`, then
/// revalidates it: with its validators if it has any, else a plain GET.
fn while_revalidating(
    client: &mut Client,
    request: &RequestHead,
    entry: Arc<Entry>,
    url: &HttpUrl,
    body: BodyLength,
    cache: Option<&Cache>,
    proxy: &Proxy,
) -> Outcome {
    let validators = Some(&*entry).filter(|e| e.facts.has_validator());
    let outgoing = origin_request(request, url, body, validators, proxy);
    let key = cache_key(url);
    let revalidation = Revalidation {
        url,
        outgoing,
        key,
        cache,
    };
    stale::while_revalidating(client, request, entry, revalidation, proxy)
}

/// Reads what the request asks for: the URL (absolute form), how its body
/// is framed, and whether it has been here before (a loop).
fn check_request(request: &RequestHead, proxy: &Proxy) -> Result<(HttpUrl, BodyLength), Refusal> {
    let url = match HttpUrl::parse(&request.target) {
        Ok(url) => url,
        Err(UrlError::NotAbsolute) => {
            return Err(refuse(
                400,
                "a proxy needs the whole URL in the request line (GET http://host/path)",
            ));
        }
        Err(UrlError::UnsupportedScheme(_)) => {
            return Err(refuse(
                501,
                "only http:// URLs are forwarded; https goes through a CONNECT tunnel",
            ));
        }
        Err(_) => return Err(refuse(400, "the request target is not a valid http:// URL")),
    };
    let body = request.body_length().map_err(|_| {
        refuse(400, "ambiguous message length: Content-Length with Transfer-Encoding, or conflicting lengths")
    })?;
    if proxy.is_our_via(&request.headers) {
        return Err(refuse(
            508,
            "this request has already passed through this proxy (a loop)",
        ));
    }
    Ok((url, body))
}

/// What the cache had for a request that it cannot answer by itself.
struct Lookup {
    /// A stale stored response with a validator: sent as a conditional.
    revalidating: Option<Arc<Entry>>,
    /// A stored response for the URL, but for other values of its Vary fields.
    vary_miss: bool,
    /// The stored response that may not be used as it is, kept in case the
    /// origin cannot be reached (RFC 9111 §4.2.4).
    stale: Option<Arc<Entry>>,
}

enum Found {
    /// Fresh enough to answer with, and for how many more seconds.
    Fresh(Arc<Entry>, u64),
    /// Stale, but within its `stale-while-revalidate` (RFC 5861 §3).
    WhileRevalidating(Arc<Entry>),
    Other(Lookup),
}

/// A stored response that may be used as it is answers the request
/// without the origin (RFC 9111 §4); one that must be revalidated lends
/// its validators to a conditional request (§4.3.1).
fn look_up(cache: Option<&Cache>, key: &str, request: &RequestHead) -> Found {
    let found = cache.and_then(|c| c.get(key));
    let vary_miss = found
        .as_ref()
        .is_some_and(|e| !e.vary_matches(&forwarded_fields(request)));
    let mut lookup = Lookup {
        revalidating: None,
        vary_miss,
        stale: None,
    };
    let Some(entry) = found.filter(|_| !vary_miss) else {
        return Found::Other(lookup);
    };
    let age = entry.age(SystemTime::now());
    let request_cc = request_cache_control(&request.headers);
    let pragma = pragma_no_cache(&request.headers);
    match policy::reuse(&request_cc, pragma, &entry.facts, age) {
        Reuse::Fresh => {
            let lifetime = policy::freshness_lifetime(&entry.facts);
            Found::Fresh(entry, lifetime.saturating_sub(age).as_secs())
        }
        Reuse::Revalidate
            if request.method == "GET"
                && !request.headers.contains("Range")
                && policy::serve_while_revalidating(&request_cc, pragma, &entry.facts, age) =>
        {
            Found::WhileRevalidating(entry)
        }
        Reuse::Revalidate => {
            if policy::may_serve_stale(&request_cc, pragma, &entry.facts, age) {
                lookup.stale = Some(entry.clone());
            }
            // A range of a stale response is not worth a conditional request
            // of our own: it goes to the origin as the client sent it.
            if entry.facts.has_validator() && !request.headers.contains("Range") {
                lookup.revalidating = Some(entry);
            }
            Found::Other(lookup)
        }
    }
}

/// The client waits for `100 Continue` before sending a large body (RFC
/// 9110 §10.1.1); the proxy says it itself rather than forwarding Expect.
/// HTTP/1.0 has no 1xx responses, so a 1.0 client never waits.
fn continue_if_expected(client: &mut Client, request: &RequestHead, body: BodyLength) {
    if body != BodyLength::Empty
        && request.version == Version::Http11
        && request.headers.has_token("Expect", "100-continue")
    {
        let _ = client.writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
}

/// A stored response the origin has just confirmed with a 304.
struct Refreshed<'a> {
    entry: &'a Arc<Entry>,
    times: (SystemTime, SystemTime),
    key: String,
}

/// Answers from the stored response the origin confirmed (304), updated
/// with the 304's fields (RFC 9111 §4.3.4), and stores the update.
fn revalidated(
    client: &mut Client,
    request: &RequestHead,
    response: &ResponseHead,
    refreshed: Refreshed,
    cache: Option<&Cache>,
    proxy: &Proxy,
) -> Outcome {
    if !response.keep_alive() {
        client.origin = None;
    }
    // Only the 304's end-to-end fields update the stored response: its
    // `Connection` or `Keep-Alive` were about that one origin connection.
    let mut not_modified = ResponseHead::new(304, &response.reason);
    not_modified.headers = end_to_end(&response.headers).cloned().collect_headers();
    let updated = Arc::new(refreshed.entry.refreshed(&not_modified, refreshed.times));
    let why = match client_forced(request) {
        true => "request",
        false => "stale",
    };
    let status = format!("{}; fwd={why}; fwd-status=304", proxy.name);
    let outcome = hit::serve(client, request, &updated, "REVALIDATED", &status, proxy);
    if let Some(cache) = cache {
        // A 304 that now says private or no-store forbids keeping the
        // response (RFC 9111 §3, §4.3.4): this client gets it, nobody
        // else does.
        let cc = &updated.facts.cache_control;
        if cc.private || cc.no_store {
            cache.remove(&refreshed.key);
        } else {
            let _ = cache.insert(updated);
        }
    }
    outcome
}

/// The K&R lab's request form: a browser pointed at the proxy as if it
/// were a web server, `http://localhost:8888/www.example.com/path`, sends
/// `GET /www.example.com/path`. The skeleton proxy of the lab takes the
/// first path segment as the host; we do too, when it looks like one (a
/// name with a dot, `localhost`, an IP address, with or without a port),
/// and return the absolute form a real proxy client would have sent:
/// `http://www.example.com/path`. None for any other target.
pub fn absolute_from_kr_form(target: &str) -> Option<String> {
    let rest = target.strip_prefix('/')?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let (host, _) = crate::http::parse_authority(authority).ok()?;
    let hostlike = host.contains('.') || host == "localhost" || host.contains(':');
    let path = match path.starts_with('/') {
        true => path.to_string(),
        false => format!("/{path}"),
    };
    hostlike.then(|| format!("http://{authority}{path}"))
}

/// An unsafe method that succeeded may have changed what is stored for its
/// URL (RFC 9111 §4.4): forget it, and what its Location names.
fn invalidate(
    proxy: &Proxy,
    request: &RequestHead,
    response: &ResponseHead,
    url: &HttpUrl,
    key: &str,
) {
    let Some(cache) = &proxy.cache else { return };
    if policy::invalidates(&request.method, response.status) {
        cache.remove(key);
        for also in invalidated_locations(url, response) {
            cache.remove(&also);
        }
    }
}

/// The URLs in `Location` and `Content-Location` of a response to an
/// unsafe method, which a cache may invalidate too (RFC 9111 §4.4), as
/// cache keys; only those on the request's own origin, so that one site
/// cannot empty the cache of another.
fn invalidated_locations(url: &HttpUrl, response: &ResponseHead) -> Vec<String> {
    let origin = url.authority().to_ascii_lowercase();
    ["Location", "Content-Location"]
        .iter()
        .filter_map(|name| response.headers.get_str(name))
        .filter_map(|value| {
            let value = value.trim();
            match value.starts_with('/') && !value.starts_with("//") {
                true => Some(format!("http://{origin}{value}")),
                false => HttpUrl::parse(value)
                    .ok()
                    .filter(|other| other.authority().eq_ignore_ascii_case(&origin))
                    .map(|other| cache_key(&other)),
            }
        })
        .collect()
}

/// Only GET and HEAD can be answered from stored GET responses (a `Range`
/// request too, from a whole stored body; its 206 is never stored). Nor a
/// request with a
/// body: a hit never reads it, so its bytes would be taken for the next
/// request on the connection (request smuggling, RFC 9112 §11.2); such a
/// request goes to the origin, body and all.
fn cacheable_request(request: &RequestHead, body: BodyLength) -> bool {
    matches!(request.method.as_str(), "GET" | "HEAD") && body == BodyLength::Empty
}

/// The cache key: the URL with the host in lower case, so `Example.org`
/// and `example.org` share an entry (RFC 9110 §4.2.3).
fn cache_key(url: &HttpUrl) -> String {
    format!(
        "http://{}{}",
        url.authority().to_ascii_lowercase(),
        url.path_and_query
    )
}

/// The request as it goes to the origin: origin-form target, `Host` from the
/// URL, end-to-end fields in their order, our `Via`, our framing, and our
/// validators when revalidating a stored response.
fn origin_request(
    request: &RequestHead,
    url: &HttpUrl,
    body: BodyLength,
    revalidating: Option<&Entry>,
    proxy: &Proxy,
) -> RequestHead {
    let mut head = RequestHead::new(&request.method, &url.path_and_query);
    head.headers.append("Host", url.authority());
    for field in end_to_end(&request.headers) {
        let conditional = field.name.eq_ignore_ascii_case("If-None-Match")
            || field.name.eq_ignore_ascii_case("If-Modified-Since");
        if field.name.eq_ignore_ascii_case("Host") || (conditional && revalidating.is_some()) {
            continue;
        }
        head.headers.append(field.name.clone(), field.value.clone());
    }
    head.headers.append("Via", proxy.via(request.version));
    match body {
        BodyLength::Length(n) => head.headers.append("Content-Length", n.to_string()),
        BodyLength::Chunked => head.headers.append("Transfer-Encoding", "chunked"),
        BodyLength::Empty | BodyLength::UntilClose => {}
    }
    if let Some(entry) = revalidating {
        if let Some(etag) = &entry.facts.etag {
            head.headers.append("If-None-Match", etag.clone());
        }
        if let Some(modified) = entry.head.headers.get("Last-Modified") {
            head.headers.append("If-Modified-Since", modified.to_vec());
        }
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kr_request_form_becomes_the_absolute_form() {
        for (target, absolute) in [
            ("/www.google.com", Some("http://www.google.com/")),
            (
                "/www.example.com/a/b?c=d",
                Some("http://www.example.com/a/b?c=d"),
            ),
            ("/example.org?q", Some("http://example.org/?q")),
            ("/localhost:8000/x", Some("http://localhost:8000/x")),
            ("/127.0.0.1:8000/", Some("http://127.0.0.1:8000/")),
            ("/[::1]:8000/", Some("http://[::1]:8000/")),
            // Not a host: still a 400 for a proxy.
            ("/", None),
            ("/page", None),
            ("/a b/c", None),
            ("/user@www.example.com/", None),
            ("http://www.example.com/", None),
            ("www.example.com:443", None),
        ] {
            assert_eq!(
                absolute_from_kr_form(target).as_deref(),
                absolute,
                "{target}"
            );
        }
    }

    #[test]
    fn location_and_content_location_on_the_same_origin_are_invalidated() {
        let url = HttpUrl::parse("http://Example.org:8000/form").expect("url");
        let mut response = ResponseHead::new(201, "Created");
        response.headers.append("Location", "/items/7");
        response
            .headers
            .append("Content-Location", "http://example.org:8000/items/7?v");
        assert_eq!(
            invalidated_locations(&url, &response),
            [
                "http://example.org:8000/items/7",
                "http://example.org:8000/items/7?v"
            ]
        );
        // Another site's URL is never touched, nor a scheme-relative one.
        let mut other = ResponseHead::new(303, "See Other");
        other.headers.append("Location", "http://victim.example/");
        other
            .headers
            .append("Content-Location", "//victim.example/");
        assert!(invalidated_locations(&url, &other).is_empty());
    }
}
