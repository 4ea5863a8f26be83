//! Relaying the origin's response to the client: re-framed for the client
//! (chunked for an HTTP/1.1 client when the origin's length is unknown,
//! until-close for HTTP/1.0), streamed piece by piece, and copied for the
//! cache when it is to be stored and arrives whole.

use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::SystemTime;

use crate::cache_status::StorePlan;
use crate::entry::Entry;
use crate::fields::{CollectHeaders, connection_field, end_to_end, forwarded_fields};
use crate::http::{BodyLength, BodyReader, ChunkedWriter, RequestHead, ResponseHead, Version};
use crate::proxy::{Client, Outcome, Proxy};

/// Relays the origin's response to the client, re-framed for it, keeping a
/// copy of the body if it is to be stored.
pub fn relay(
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
    let to_client = client_framing(origin_length, request.version);
    let keep_client = request.keep_alive() && to_client != BodyLength::UntilClose;
    let keep_origin = response.keep_alive() && origin_length != BodyLength::UntilClose;
    let cache_status = format!("{}; {}", proxy.name, plan.cache_status);
    let mut head = client_head(&response, to_client, &cache_status, proxy);
    connection_field(&mut head, request.version, keep_client);

    let max_object = proxy.cache.as_ref().map_or(0, |c| c.max_object());
    let mut copy_for_cache = cache_copy(plan.store, origin_length, max_object);
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
            release_origin(client, keep_origin);
            if let (Some(body), Some(cache)) = (copy_for_cache, &proxy.cache) {
                let entry = stored_entry(request, &response, body, key, times);
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

/// RFC 9110 §6.6.1: a response without `Date` gets the time it arrived,
/// before it is cached or passed on; the freshness rules count from it.
pub fn date_if_missing(response: &mut ResponseHead, arrived: SystemTime) {
    if !response.headers.contains("Date") {
        let date = httpdate::fmt_http_date(arrived);
        response.headers.append("Date", date);
    }
}

/// Where the body is copied to for the cache: nowhere if it is not to be
/// stored or is announced larger than the largest object kept.
fn cache_copy(store: bool, length: BodyLength, max_object: usize) -> Option<Vec<u8>> {
    match length {
        _ if !store => None,
        BodyLength::Length(n) if n > max_object as u64 => None,
        BodyLength::Length(n) => Some(Vec::with_capacity(n as usize)),
        _ => Some(Vec::new()),
    }
}

/// After a whole response: the origin connection stays for the next
/// request unless it ends here, or has bytes already read past the body's
/// end, which answer nothing we asked: it is out of step (RFC 9112 §6.3).
fn release_origin(client: &mut Client, keep_origin: bool) {
    let stray = client
        .origin
        .as_ref()
        .is_some_and(|o| !o.reader.buffer().is_empty());
    if !keep_origin || stray {
        client.origin = None;
    }
}

/// How the body is framed for the client. A body read until close can
/// still reach an HTTP/1.1 client on a kept-alive connection, re-framed as
/// chunked; an HTTP/1.0 client, which knows no chunked, gets it until close.
fn client_framing(origin: BodyLength, client: Version) -> BodyLength {
    match (origin, client) {
        (BodyLength::Chunked | BodyLength::UntilClose, Version::Http11) => BodyLength::Chunked,
        (BodyLength::Chunked | BodyLength::UntilClose, Version::Http10) => BodyLength::UntilClose,
        (length, _) => length,
    }
}

/// The entry to store: the response without hop-by-hop and framing
/// fields (a hit gets its own Content-Length), and the request's varying
/// fields as the origin saw them.
pub fn stored_entry(
    request: &RequestHead,
    response: &ResponseHead,
    body: Vec<u8>,
    key: String,
    times: (SystemTime, SystemTime),
) -> Entry {
    let mut stored = ResponseHead::new(response.status, &response.reason);
    stored.version = response.version;
    stored.headers = end_to_end(&response.headers).cloned().collect_headers();
    Entry::new(key, stored, body, &forwarded_fields(request), times)
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
