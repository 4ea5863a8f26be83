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

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::http::{
    BodyLength, BodyReader, ChunkedWriter, HeadError, Header, Headers, HttpUrl, RequestHead,
    ResponseHead, UrlError, Version,
};
use socketlab::explain;

use crate::allow;
use crate::entry::Entry;
use crate::policy::{self, CacheControl, RequestFacts, Reuse};
use crate::proxy::{Client, Origin, Outcome, Proxy, connect_timed_out, send_error};

/// Fields that describe one connection, never forwarded (RFC 9110 §7.6.1),
/// and the framing fields, which the proxy writes itself.
const HOP_BY_HOP: [&str; 11] = [
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

/// An answer the proxy gives itself because the request cannot be
/// forwarded; the connection closes after it.
pub struct Refusal {
    pub status: u16,
    pub message: &'static str,
    /// An interim response already went to the client: a retry would send
    /// it twice, and an error answer would follow a 1xx (still valid).
    pub interim_sent: bool,
}

fn refuse(status: u16, message: &'static str) -> Refusal {
    Refusal {
        status,
        message,
        interim_sent: false,
    }
}

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
    let key = cache_key(&url);
    let cache = proxy
        .cache
        .as_ref()
        .filter(|_| cacheable_request(request, body));

    // A stored response that may be used as it is answers the request
    // without the origin (RFC 9111 §4); one that must be revalidated
    // lends its validators to a conditional request (§4.3.1).
    let found = cache.and_then(|c| c.get(&key));
    let vary_miss = found
        .as_ref()
        .is_some_and(|e| !e.vary_matches(&forwarded_fields(request)));
    let stored = found.filter(|_| !vary_miss);
    let request_cc = request_cache_control(&request.headers);
    let mut revalidating = None;
    if let Some(entry) = stored {
        let now = SystemTime::now();
        let age = entry.age(now);
        let pragma = pragma_no_cache(&request.headers);
        match policy::reuse(&request_cc, pragma, &entry.facts, age) {
            Reuse::Fresh => {
                let ttl = policy::freshness_lifetime(&entry.facts)
                    .saturating_sub(age)
                    .as_secs();
                let status = format!("{}; hit; ttl={ttl}", proxy.name);
                return Ok(serve_stored(client, request, &entry, "HIT", &status, proxy));
            }
            Reuse::Revalidate if entry.facts.has_validator() => revalidating = Some(entry),
            Reuse::Revalidate => {}
        }
    }

    // §5.2.1.7: the client wants no traffic to the origin at all.
    if request_cc.only_if_cached {
        return Err(refuse(504, "only-if-cached, and no fresh stored response"));
    }
    let outgoing = origin_request(request, &url, body, revalidating.as_deref(), proxy);
    if body != BodyLength::Empty
        && request.version == Version::Http11
        && request.headers.has_token("Expect", "100-continue")
    {
        // The client waits for this before sending a large body (RFC 9110
        // §10.1.1); the proxy says it itself rather than forwarding Expect.
        // HTTP/1.0 has no 1xx responses, so a 1.0 client never waits.
        let _ = client.writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let request_time = SystemTime::now();
    let forward_interim = request.version == Version::Http11;
    let mut response = send_to_origin(client, &url, &outgoing, body, forward_interim, proxy)?;
    let times = (request_time, SystemTime::now());
    // RFC 9110 §6.6.1: a response without `Date` gets the time it arrived,
    // before it is cached or passed on; the freshness rules count from it.
    if !response.headers.contains("Date") {
        response
            .headers
            .append("Date", httpdate::fmt_http_date(times.1));
    }

    if let (Some(entry), 304) = (&revalidating, response.status) {
        if !response.keep_alive() {
            client.origin = None;
        }
        // Only the 304's end-to-end fields update the stored response: its
        // `Connection` or `Keep-Alive` were about that one origin connection.
        let mut not_modified = ResponseHead::new(304, &response.reason);
        not_modified.headers = end_to_end(&response.headers).cloned().collect_headers();
        let refreshed = entry.refreshed(&not_modified, times);
        let why = if client_forced(request) {
            "request"
        } else {
            "stale"
        };
        let status = format!("{}; fwd={why}; fwd-status=304", proxy.name);
        let refreshed = Arc::new(refreshed);
        let outcome = serve_stored(client, request, &refreshed, "REVALIDATED", &status, proxy);
        if let Some(cache) = cache {
            // A 304 that now says private or no-store forbids keeping the
            // response (RFC 9111 §3, §4.3.4): this client gets it, nobody
            // else does.
            let cc = &refreshed.facts.cache_control;
            if cc.private || cc.no_store {
                cache.remove(&key);
            } else {
                let _ = cache.insert(refreshed);
            }
        }
        return Ok(outcome);
    }
    if let Some(cache) = &proxy.cache {
        if policy::invalidates(&request.method, response.status) {
            cache.remove(&key);
            for also in invalidated_locations(&url, &response) {
                cache.remove(&also);
            }
        }
    }
    let plan = StorePlan::decide(
        cache.is_some(),
        request,
        &response,
        revalidating.is_some(),
        vary_miss,
    );
    Ok(relay(client, request, response, plan, key, times, proxy))
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

/// Only GET and HEAD can be answered from stored GET responses, and never
/// a `Range` request (we store whole bodies only). Nor a request with a
/// body: a hit never reads it, so its bytes would be taken for the next
/// request on the connection (request smuggling, RFC 9112 §11.2); such a
/// request goes to the origin, body and all.
fn cacheable_request(request: &RequestHead, body: BodyLength) -> bool {
    matches!(request.method.as_str(), "GET" | "HEAD")
        && !request.headers.contains("Range")
        && body == BodyLength::Empty
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

fn request_cache_control(headers: &Headers) -> CacheControl {
    CacheControl::parse(headers.list("Cache-Control"))
}

/// `Pragma: no-cache` counts only when there is no Cache-Control (RFC 9111 §5.4).
fn pragma_no_cache(headers: &Headers) -> bool {
    !headers.contains("Cache-Control") && headers.has_token("Pragma", "no-cache")
}

/// True if the client asked for a fresh answer (a browser's reload sends
/// `Cache-Control: max-age=0`, a forced reload `no-cache`): RFC 9211's
/// `fwd=request`.
fn client_forced(request: &RequestHead) -> bool {
    let cc = request_cache_control(&request.headers);
    cc.no_cache || cc.max_age.is_some() || pragma_no_cache(&request.headers)
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

/// The request's fields as the origin sees them. `Vary` is about these
/// (RFC 9111 §4.1): a field the client named in `Connection` never reached
/// the origin, so its value must not pick the stored variant.
fn forwarded_fields(request: &RequestHead) -> Headers {
    end_to_end(&request.headers).cloned().collect_headers()
}

/// The fields of a message that go on to the next hop: everything except
/// the hop-by-hop fields and those that `Connection` names.
fn end_to_end(headers: &Headers) -> impl Iterator<Item = &Header> {
    let named: Vec<String> = headers
        .list("Connection")
        .map(str::to_ascii_lowercase)
        .collect();
    headers.iter().filter(move |field| {
        let name = field.name.to_ascii_lowercase();
        !HOP_BY_HOP.contains(&name.as_str()) && !named.contains(&name)
    })
}

// ---------------------------------------------------------------------------
// Talking to the origin
// ---------------------------------------------------------------------------

/// Sends the request (head and body) to the origin and reads the response
/// head. A kept-alive origin connection is reused only if it is still idle
/// (nothing unread, no FIN); if the origin closed it just as the request
/// went out, a request without a body is retried once on a new one.
fn send_to_origin(
    client: &mut Client,
    url: &HttpUrl,
    outgoing: &RequestHead,
    body: BodyLength,
    forward_interim: bool,
    proxy: &Proxy,
) -> Result<ResponseHead, Refusal> {
    let authority = url.authority().to_ascii_lowercase();
    let reusable = client
        .origin
        .as_ref()
        .is_some_and(|o| o.authority == authority && still_idle(o));
    if reusable {
        if let Some(response) = try_reused(client, outgoing, body, forward_interim, proxy) {
            return response;
        }
    }
    client.origin = Some(connect_origin(url, authority, client.peer, proxy)?);
    let origin = client.origin.as_mut().expect("just connected");
    origin
        .writer
        .write_all(&outgoing.to_bytes())
        .map_err(|_| refuse(502, "the origin closed the connection"))?;
    send_body(&mut client.reader, body, &mut origin.writer)?;
    read_response(
        origin,
        &outgoing.method,
        &mut Interim::to(&mut client.writer, forward_interim),
        proxy,
    )
}

/// True if a kept-alive origin connection can carry another request: no
/// unread bytes and nothing arriving. Bytes the origin sent beyond its last
/// response (past its Content-Length, or a body after a HEAD response)
/// would be read as the answer to the next request and could be cached for
/// everyone, so such a connection is closed (RFC 9112 §6.3); so is one the
/// origin closed while it was idle (`peek` returns 0, its FIN), which would
/// fail a request whose body cannot be sent again.
fn still_idle(origin: &Origin) -> bool {
    if !origin.reader.buffer().is_empty() {
        return false;
    }
    let stream = origin.reader.get_ref();
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    // recv(MSG_PEEK) on a non-blocking socket: EAGAIN means nothing there.
    let idle =
        matches!(stream.peek(&mut byte), Err(err) if err.kind() == io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).is_ok() && idle
}

/// Tries the kept-alive connection; None if it turned out to be closed and
/// the request may be sent again on a new connection.
fn try_reused(
    client: &mut Client,
    outgoing: &RequestHead,
    body: BodyLength,
    forward_interim: bool,
    proxy: &Proxy,
) -> Option<Result<ResponseHead, Refusal>> {
    let origin = client.origin.as_mut()?;
    // RFC 9112 §9.3.1: only an idempotent request may be sent again, and
    // only one without a body (the body has been read from the client).
    let idempotent = matches!(
        outgoing.method.as_str(),
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    );
    let replayable = idempotent && body == BodyLength::Empty;
    if origin.writer.write_all(&outgoing.to_bytes()).is_err() {
        return if replayable {
            None
        } else {
            Some(Err(refuse(502, "the origin closed the connection")))
        };
    }
    if let Err(refusal) = send_body(&mut client.reader, body, &mut origin.writer) {
        return Some(Err(refusal));
    }
    let mut interim = Interim::to(&mut client.writer, forward_interim);
    match read_response(origin, &outgoing.method, &mut interim, proxy) {
        // The origin closed the idle connection just before our request
        // (RFC 9112 §9.3.1 allows a retry of an idempotent request).
        Err(refusal) if replayable && refusal.status == 502 && !refusal.interim_sent => None,
        other => Some(other),
    }
}

/// Resolves the origin's name and connects, with `--origin-timeout` for
/// the handshake and for every read and write afterwards.
fn connect_origin(
    url: &HttpUrl,
    authority: String,
    peer: SocketAddr,
    proxy: &Proxy,
) -> Result<Origin, Refusal> {
    if !proxy
        .http_ports
        .iter()
        .any(|ports| ports.contains(url.port))
    {
        return Err(refuse(403, allow::UNUSUAL_PORT));
    }
    let addrs = socketlab::cli::resolve(&url.host, url.port)
        .map_err(|_| refuse(502, "the origin's host name could not be resolved"))?;
    if let Some(rule) = allow::destination_refusal(peer.ip(), &addrs) {
        return Err(refuse(403, rule));
    }
    if addrs.iter().any(|&addr| proxy.is_self(addr)) {
        return Err(refuse(
            508,
            "the request is addressed to this proxy itself (a loop)",
        ));
    }
    match socketlab::connect::tcp(&addrs, proxy.origin_timeout) {
        Ok(stream) => origin_streams(stream, authority, proxy.origin_timeout)
            .map_err(|_| refuse(502, "the origin connection failed")),
        Err(err) if connect_timed_out(&err) => Err(refuse(
            504,
            "the origin did not answer the connection attempt in time",
        )),
        // A RST answering our SYN: nothing listens on that port.
        Err(_) => Err(refuse(502, "the origin refused the connection")),
    }
}

fn origin_streams(stream: TcpStream, authority: String, timeout: Duration) -> io::Result<Origin> {
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    let writer = stream.try_clone()?;
    Ok(Origin {
        authority,
        reader: BufReader::with_capacity(64 * 1024, stream),
        writer,
    })
}

/// Copies the client's request body to the origin, re-framed the same way.
fn send_body(
    from: &mut BufReader<TcpStream>,
    body: BodyLength,
    to: &mut TcpStream,
) -> Result<(), Refusal> {
    let mut reader = BodyReader::new(from, body);
    let copied = match body {
        BodyLength::Chunked => {
            let mut chunked = ChunkedWriter::new(io::BufWriter::new(&mut *to));
            copy(&mut reader, &mut chunked)
                .and_then(|n| chunked.finish().map_err(|_| CopyError::Write).map(|_| n))
        }
        _ => copy(&mut reader, to),
    };
    match copied {
        Ok(_) => Ok(()),
        Err(CopyError::Read) => Err(refuse(400, "the request body ended early or was malformed")),
        Err(CopyError::Write) => Err(refuse(
            502,
            "the origin closed the connection while the request body was sent",
        )),
    }
}

/// The most interim (1xx) responses relayed before a final one: an origin
/// that sends them for ever would otherwise hold a client slot for ever.
const MAX_INTERIM: usize = 20;

/// Reads the origin's response head. Interim 1xx responses (103 Early
/// Hints, 102 Processing) go on to the client at once, as RFC 9110 §15.2
/// requires of a proxy, except to an HTTP/1.0 client, which has none; a
/// client that left ends the wait (the write fails), and so does the
/// [`MAX_INTERIM`]th interim response.
fn read_response(
    origin: &mut Origin,
    method: &str,
    interim: &mut Interim,
    proxy: &Proxy,
) -> Result<ResponseHead, Refusal> {
    for _ in 0..=MAX_INTERIM {
        let head = ResponseHead::read_from(&mut origin.reader).map_err(|err| match err {
            HeadError::Io(err) if explain::is_timeout(&err) => {
                refuse(504, "the origin sent no response within --origin-timeout")
            }
            _ => refuse(502, "the origin sent no valid response"),
        });
        let head = head.map_err(|refusal| interim.mark(refusal))?;
        if head.is_interim() {
            interim
                .relay(&head, proxy)
                .map_err(|refusal| interim.mark(refusal))?;
            continue;
        }
        head.body_length(method).map_err(|_| {
            interim.mark(refuse(502, "the origin's response has an ambiguous length"))
        })?;
        return Ok(head);
    }
    Err(interim.mark(refuse(
        502,
        "the origin sent too many interim (1xx) responses",
    )))
}

/// Where interim responses go while the final one is awaited.
struct Interim<'a> {
    client: &'a mut TcpStream,
    /// False for an HTTP/1.0 client (RFC 9110 §15.2: never forward 1xx to it).
    forward: bool,
    sent: bool,
}

impl Interim<'_> {
    fn to(client: &mut TcpStream, forward: bool) -> Interim<'_> {
        Interim {
            client,
            forward,
            sent: false,
        }
    }

    /// Passes one interim response on, without hop-by-hop fields and with
    /// our `Via`; never stored (it has no body and is not a response to
    /// the request). A failed write means the client left: stop waiting.
    fn relay(&mut self, head: &ResponseHead, proxy: &Proxy) -> Result<(), Refusal> {
        if !self.forward {
            return Ok(());
        }
        let mut interim = ResponseHead::new(head.status, &head.reason);
        interim.headers = end_to_end(&head.headers).cloned().collect_headers();
        interim.headers.append("Via", proxy.via(head.version));
        self.sent = true;
        interim.write_to(self.client).map_err(|_| {
            refuse(
                502,
                "the client left while the origin sent interim responses",
            )
        })
    }

    fn mark(&self, refusal: Refusal) -> Refusal {
        Refusal {
            interim_sent: self.sent,
            ..refusal
        }
    }
}

/// Which side of a copy failed.
enum CopyError {
    Read,
    Write,
}

fn copy(from: &mut impl Read, to: &mut impl Write) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = from.read(&mut buf).map_err(|_| CopyError::Read)?;
        if n == 0 {
            return Ok(total);
        }
        to.write_all(&buf[..n]).map_err(|_| CopyError::Write)?;
        total += n as u64;
    }
}

// ---------------------------------------------------------------------------
// Answering the client
// ---------------------------------------------------------------------------

/// Whether and why a response is stored, decided from its head before its
/// body is relayed.
struct StorePlan {
    store: bool,
    /// Both the access log's word and RFC 9211's `fwd` parameter.
    log: &'static str,
    cache_status: String,
}

impl StorePlan {
    fn decide(
        enabled: bool,
        request: &RequestHead,
        response: &ResponseHead,
        was_stale: bool,
        vary_miss: bool,
    ) -> StorePlan {
        if !enabled {
            return StorePlan {
                store: false,
                log: "BYPASS",
                cache_status: "fwd=bypass".into(),
            };
        }
        let request_cc = request_cache_control(&request.headers);
        let fwd = if client_forced(request) {
            "request"
        } else if was_stale {
            "stale"
        } else if vary_miss {
            "vary-miss"
        } else {
            "uri-miss"
        };
        let facts = crate::entry::facts_of(response);
        let request_facts = RequestFacts {
            method: request.method.clone(),
            cache_control: request_cc,
            has_authorization: request.headers.contains("Authorization"),
            has_range: request.headers.contains("Range"),
        };
        let status = response.status;
        match policy::may_store(&request_facts, &facts) {
            Ok(()) => StorePlan {
                store: true,
                log: "MISS",
                cache_status: format!("fwd={fwd}; fwd-status={status}; stored"),
            },
            Err(why) => StorePlan {
                store: false,
                log: "MISS",
                cache_status: format!("fwd={fwd}; fwd-status={status}; detail=\"{why}\""),
            },
        }
    }
}

/// Relays the origin's response to the client, re-framed for it, keeping a
/// copy of the body if it is to be stored.
fn relay(
    client: &mut Client,
    request: &RequestHead,
    response: ResponseHead,
    plan: StorePlan,
    key: String,
    times: (SystemTime, SystemTime),
    proxy: &Proxy,
) -> Outcome {
    let origin_length = response
        .body_length(&request.method)
        .expect("checked in read_response");
    // A body read until close can still reach an HTTP/1.1 client on a
    // kept-alive connection, re-framed as chunked.
    let to_client = match (origin_length, request.version) {
        (BodyLength::Chunked | BodyLength::UntilClose, Version::Http11) => BodyLength::Chunked,
        (BodyLength::Chunked | BodyLength::UntilClose, Version::Http10) => BodyLength::UntilClose,
        (length, _) => length,
    };
    let keep_client = request.keep_alive() && to_client != BodyLength::UntilClose;
    let keep_origin = response.keep_alive() && origin_length != BodyLength::UntilClose;
    let cache_status = format!("{}; {}", proxy.name, plan.cache_status);
    let mut head = client_head(&response, to_client, &cache_status, proxy);
    connection_field(&mut head, request.version, keep_client);

    let max_object = proxy.cache.as_ref().map_or(0, |c| c.max_object());
    let mut copy_for_cache = match origin_length {
        _ if !plan.store => None,
        BodyLength::Length(n) if n > max_object as u64 => None,
        BodyLength::Length(n) => Some(Vec::with_capacity(n as usize)),
        _ => Some(Vec::new()),
    };
    let origin = client
        .origin
        .as_mut()
        .expect("a response came from this origin");
    let relayed = relay_body(
        &mut origin.reader,
        origin_length,
        &mut client.writer,
        &head,
        to_client,
        &mut copy_for_cache,
        max_object,
    );
    let outcome = |bytes, keep_alive| Outcome {
        status: response.status,
        cache: plan.log,
        bytes,
        keep_alive,
    };
    match relayed {
        Ok(bytes) => {
            // Bytes already read past the body's end are not a response to
            // anything we asked: the connection is out of step (§6.3).
            let stray = client
                .origin
                .as_ref()
                .is_some_and(|o| !o.reader.buffer().is_empty());
            if !keep_origin || stray {
                client.origin = None;
            }
            if let (Some(body), Some(cache)) = (copy_for_cache, &proxy.cache) {
                // Stored without hop-by-hop and framing fields: a hit gets
                // its own Content-Length.
                let mut stored = ResponseHead::new(response.status, &response.reason);
                stored.version = response.version;
                stored.headers = end_to_end(&response.headers).cloned().collect_headers();
                let entry = Entry::new(key, stored, body, &forwarded_fields(request), times);
                let _ = cache.insert(Arc::new(entry));
            }
            outcome(bytes, keep_client)
        }
        // The origin vanished or the client did: this transaction ends, the
        // client sees a cut-off body, nothing is stored.
        Err(bytes) => {
            client.origin = None;
            outcome(bytes, false)
        }
    }
}

/// Copies the body, re-framed; on failure returns the bytes sent so far.
fn relay_body(
    origin: &mut BufReader<TcpStream>,
    from: BodyLength,
    client: &mut TcpStream,
    head: &ResponseHead,
    to: BodyLength,
    copy_for_cache: &mut Option<Vec<u8>>,
    max_object: usize,
) -> Result<u64, u64> {
    client.write_all(&head.to_bytes()).map_err(|_| 0u64)?;
    let mut reader = BodyReader::new(origin, from);
    let mut out = match to {
        BodyLength::Chunked => BodyWriter::Chunked(ChunkedWriter::new(client)),
        _ => BodyWriter::Plain(client),
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|_| sent)?;
        if n == 0 {
            break;
        }
        // Each piece read from the origin goes out at once (a chunk of its
        // own when re-framing), so a slowly streamed body streams through.
        out.write_all(&buf[..n]).map_err(|_| sent)?;
        sent += n as u64;
        if let Some(body) = copy_for_cache {
            body.extend_from_slice(&buf[..n]);
            if body.len() > max_object {
                *copy_for_cache = None;
            }
        }
    }
    out.finish().map_err(|_| sent)?;
    Ok(sent)
}

/// Where a relayed body goes: straight to the client, or through the
/// chunked encoder (one chunk per write).
enum BodyWriter<'a> {
    Plain(&'a mut TcpStream),
    Chunked(ChunkedWriter<&'a mut TcpStream>),
}

impl BodyWriter<'_> {
    /// Ends the body: the last chunk for chunked, nothing otherwise.
    fn finish(self) -> io::Result<()> {
        match self {
            BodyWriter::Plain(_) => Ok(()),
            BodyWriter::Chunked(chunked) => chunked.finish().map(drop),
        }
    }
}

impl Write for BodyWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            BodyWriter::Plain(stream) => stream.write(buf),
            BodyWriter::Chunked(chunked) => chunked.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            BodyWriter::Plain(stream) => stream.flush(),
            BodyWriter::Chunked(chunked) => chunked.flush(),
        }
    }
}

/// The response head for the client: the origin's status and end-to-end
/// fields, our `Via`, `Cache-Status` and framing.
fn client_head(
    response: &ResponseHead,
    framing: BodyLength,
    cache_status: &str,
    proxy: &Proxy,
) -> ResponseHead {
    let mut head = ResponseHead::new(response.status, &response.reason);
    head.headers = end_to_end(&response.headers).cloned().collect_headers();
    head.headers.append("Via", proxy.via(response.version));
    head.headers.append("Cache-Status", cache_status);
    match framing {
        BodyLength::Length(n) => head.headers.append("Content-Length", n.to_string()),
        BodyLength::Chunked => head.headers.append("Transfer-Encoding", "chunked"),
        // A response to HEAD, or a 304, keeps the length of the body it
        // stands for (RFC 9110 §8.6).
        BodyLength::Empty => {
            if let Some(length) = response.headers.get("Content-Length") {
                if response.status != 204 {
                    head.headers.append("Content-Length", length.to_vec());
                }
            }
        }
        BodyLength::UntilClose => {}
    }
    head
}

/// Says whether the connection stays open (RFC 9112 §9.3): HTTP/1.1
/// persists unless told `close`; an HTTP/1.0 client persists only when
/// told `keep-alive`.
fn connection_field(head: &mut ResponseHead, client: Version, keep_alive: bool) {
    match (keep_alive, client) {
        (false, _) => head.headers.append("Connection", "close"),
        (true, Version::Http10) => head.headers.append("Connection", "keep-alive"),
        (true, Version::Http11) => {}
    }
}

/// Answers from a stored response: 304 if the client's own conditional
/// matches it (RFC 9111 §4.3.2), otherwise the stored status, fields and
/// body with `Age` (§5.1).
fn serve_stored(
    client: &mut Client,
    request: &RequestHead,
    entry: &Arc<Entry>,
    log: &'static str,
    cache_status: &str,
    proxy: &Proxy,
) -> Outcome {
    let keep_alive = request.keep_alive();
    let age = entry.age(SystemTime::now()).as_secs();
    let inm = request.headers.get_str("If-None-Match");
    let ims = request.headers.get_str("If-Modified-Since");
    let conditional = policy::not_modified(inm, ims, &entry.facts) && entry.head.status == 200;
    let mut head = if conditional {
        ResponseHead::new(304, "Not Modified")
    } else {
        entry.head.clone()
    };
    head.version = Version::Http11;
    if conditional {
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
    }
    head.headers.set("Age", age.to_string());
    head.headers.append("Via", proxy.via(entry.head.version));
    head.headers.append("Cache-Status", cache_status);
    if !conditional {
        head.headers
            .append("Content-Length", entry.body.len().to_string());
    }
    connection_field(&mut head, request.version, keep_alive);
    let body: &[u8] = match conditional || request.method == "HEAD" {
        true => &[],
        false => &entry.body,
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

/// Collects fields into a [`Headers`] (kept in their order).
trait CollectHeaders {
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
