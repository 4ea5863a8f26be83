//! One client connection, served by its own thread: request after request
//! on the same TCP connection (keep-alive), each answered in the order it
//! arrived, so pipelined requests (sent before the previous answer came
//! back) work too: whatever the client sent beyond the current request
//! waits in the `BufReader` until its turn.

use std::io::BufReader;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::http::{HeadError, RequestHead};
use socketlab::{explain, listen};

use crate::forward::{self, Origin, Outcome};
use crate::{Proxy, tunnel};

/// A client connection and the origin connection it last used.
pub struct Client {
    pub reader: BufReader<TcpStream>,
    pub writer: TcpStream,
    pub origin: Option<Origin>,
}

/// Serves requests on one client connection until it closes, idles past
/// `--idle-timeout`, or a response cannot be followed by another.
pub fn serve(stream: TcpStream, peer: SocketAddr, proxy: &Proxy) {
    let mut client = match connect_client(stream, proxy) {
        Ok(client) => client,
        Err(err) => {
            proxy.log.peer(
                peer,
                format_args!("setting up the connection failed: {err}"),
            );
            return;
        }
    };
    while let Some(request) = next_request(&mut client, peer, proxy) {
        let started = Instant::now();
        if request.method == "CONNECT" {
            let outcome = tunnel::open(&mut client, &request, proxy);
            access_log(proxy, peer, started, "CONNECT", &request.target, &outcome);
            return;
        }
        let outcome = forward::exchange(&mut client, &request, proxy);
        access_log(
            proxy,
            peer,
            started,
            &request.method,
            &request.target,
            &outcome,
        );
        if !outcome.keep_alive {
            break;
        }
    }
    listen::close_gracefully(client.reader.get_ref());
}

/// Answers a connection the proxy will not serve. The request head is
/// read first (briefly, for the log): closing a socket with unread data
/// makes the kernel send a RST, which can destroy the answer before the
/// client reads it.
pub fn refuse(stream: TcpStream, peer: SocketAddr, proxy: &Proxy, status: u16, message: &str) {
    let started = Instant::now();
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut writer = match stream.try_clone() {
        Ok(writer) => writer,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    let request = RequestHead::read_from(&mut reader).ok();
    let bytes = forward::send_error(&mut writer, status, message, proxy).unwrap_or(0);
    let outcome = Outcome {
        status,
        cache: "NONE",
        bytes,
        keep_alive: false,
    };
    let (method, target) = match &request {
        Some(request) => (request.method.as_str(), request.target.as_str()),
        None => ("-", "-"),
    };
    access_log(proxy, peer, started, method, target, &outcome);
    listen::close_gracefully(&writer);
}

/// Reads the next request head; None when the connection is done: closed
/// by the client, idle too long, broken, or sent something that is not a
/// request (answered with 400 or 431 first).
fn next_request(client: &mut Client, peer: SocketAddr, proxy: &Proxy) -> Option<RequestHead> {
    let err = match RequestHead::read_from(&mut client.reader) {
        Ok(request) => return Some(request),
        Err(err) => err,
    };
    match err {
        // The client closed between requests: the normal end.
        HeadError::Closed => {}
        // No new request within --idle-timeout (EAGAIN from recv).
        HeadError::Io(err) if explain::is_timeout(&err) => {}
        HeadError::Io(err) => proxy
            .log
            .peer(peer, format_args!("connection failed: {err}")),
        // 431 for a head over the limits, 400 for a malformed one.
        err => {
            let status = err.status().unwrap_or(400);
            let message = match status {
                431 => "the request head is larger than 64 KiB or has more than 100 fields",
                _ => "the request head is malformed",
            };
            let bytes =
                forward::send_error(&mut client.writer, status, message, proxy).unwrap_or(0);
            let outcome = Outcome {
                status,
                cache: "NONE",
                bytes,
                keep_alive: false,
            };
            access_log(proxy, peer, Instant::now(), "-", "-", &outcome);
        }
    }
    None
}

fn connect_client(stream: TcpStream, proxy: &Proxy) -> std::io::Result<Client> {
    // Idle kept-alive connections end after --idle-timeout: every read of
    // the client gives up then.
    stream.set_read_timeout(Some(proxy.idle_timeout))?;
    stream.set_write_timeout(Some(proxy.idle_timeout))?;
    // Responses are written whole; Nagle's algorithm would only delay the
    // last segment of each.
    stream.set_nodelay(true)?;
    let writer = stream.try_clone()?;
    Ok(Client {
        reader: BufReader::with_capacity(16 * 1024, stream),
        writer,
        origin: None,
    })
}

/// One line per transaction, in the order of squid's access.log: time,
/// elapsed, client, cache status and HTTP code, body bytes, method, URL.
pub fn access_log(
    proxy: &Proxy,
    peer: SocketAddr,
    started: Instant,
    method: &str,
    url: &str,
    outcome: &Outcome,
) {
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    // The URL is the client's text: show it, but never its control bytes.
    let url = socketlab::printable::quoted(url.as_bytes(), 200);
    proxy.log.note(format_args!(
        "{elapsed:.1}ms {peer} {}/{} {} {method} {}",
        outcome.cache,
        outcome.status,
        outcome.bytes,
        url.trim_matches('"')
    ));
}
