//! Talking to the origin: connecting (or reusing the kept-alive connection
//! when it is still idle), sending the request and its body, and reading
//! the response head, with the interim 1xx responses passed on.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use socketlab::explain;

use crate::allow;
use crate::fields::{CollectHeaders, end_to_end};
use crate::http::{
    BodyLength, BodyReader, ChunkedWriter, HeadError, HttpUrl, RequestHead, ResponseHead,
};
use crate::proxy::{Client, Origin, Proxy, Refusal, connect_timed_out, refuse};

/// Sends the request (head and body) to the origin and reads the response
/// head. A kept-alive origin connection is reused only if it is still idle
/// (nothing unread, no FIN); if the origin closed it just as the request
/// went out, a request without a body is retried once on a new one.
pub fn send_to_origin(
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
