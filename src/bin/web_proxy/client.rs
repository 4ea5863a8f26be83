//! One client connection, served by its own thread: request after request
//! on the same TCP connection (keep-alive), each answered in the order it
//! arrived, so pipelined requests (sent before the previous answer came
//! back) work too: whatever the client sent beyond the current request
//! waits in the `BufReader` until its turn.

use std::io::{self, BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::http::{HeadError, RequestHead};
use socketlab::{explain, listen};

use crate::forward;
use crate::proxy::{Client, Outcome, Proxy, send_error};
use crate::tunnel;

/// Serves requests on one client connection until it closes, idles past
/// `--idle-timeout`, or a response cannot be followed by another.
pub fn serve(stream: TcpStream, peer: SocketAddr, proxy: &Proxy) {
    let mut client = match connect_client(stream, peer, proxy) {
        Ok(client) => client,
        Err(err) => {
            proxy.log.peer(
                peer,
                format_args!("setting up the connection failed: {err}"),
            );
            return;
        }
    };
    while let Some(mut request) = next_request(&mut client, peer, proxy) {
        // `GET /www.example.com/path`, the K&R lab's form: forwarded, and
        // logged, as `GET http://www.example.com/path`.
        if let Some(absolute) = forward::absolute_from_kr_form(&request.target) {
            request.target = absolute;
        }
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
/// read first (for the log, within half a second): closing a socket with
/// unread data makes the kernel send a RST, which can destroy the answer
/// before the client reads it.
pub fn refuse(stream: TcpStream, peer: SocketAddr, proxy: &Proxy, status: u16, message: &str) {
    let started = Instant::now();
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut timed = Deadline {
        reader: &mut reader,
        until: started + Duration::from_millis(500),
    };
    let request = RequestHead::read_from(&mut timed).ok();
    let bytes = send_error(&mut writer, status, message, proxy).unwrap_or(0);
    let (method, target) = match &request {
        Some(request) => (request.method.as_str(), request.target.as_str()),
        None => ("-", "-"),
    };
    access_log(
        proxy,
        peer,
        started,
        method,
        target,
        &Outcome::error(status, bytes),
    );
    listen::close_gracefully(&writer);
}

/// Answers a refusal from the accept loop itself, when refusals already
/// have all the threads they may use: a write that cannot block (the new
/// socket's send buffer is empty), a FIN, and close. A client that had
/// sent its request may then see a reset instead of the answer.
pub fn refuse_now(stream: TcpStream, peer: SocketAddr, proxy: &Proxy, status: u16, message: &str) {
    let mut writer = stream;
    let bytes = match writer.set_nonblocking(true) {
        Ok(()) => send_error(&mut writer, status, message, proxy).unwrap_or(0),
        Err(_) => 0,
    };
    let _ = writer.shutdown(std::net::Shutdown::Write);
    let outcome = Outcome::error(status, bytes);
    access_log(proxy, peer, Instant::now(), "-", "-", &outcome);
}

/// Reads the next request head; None when the connection is done: closed
/// by the client, idle too long, broken, or sent something that is not a
/// request (answered with 400, 408 or 431 first).
fn next_request(client: &mut Client, peer: SocketAddr, proxy: &Proxy) -> Option<RequestHead> {
    let (err, begun) = match read_head_in_time(client, proxy) {
        Ok(request) => return Some(request),
        Err(failed) => failed,
    };
    let (status, message) = match err {
        // The client closed between requests: the normal end.
        HeadError::Closed => return None,
        // No new request within --idle-timeout (EAGAIN from recv).
        HeadError::Io(err) if explain::is_timeout(&err) && !begun => return None,
        // Part of a head, and the rest not within --head-timeout.
        HeadError::Io(err) if explain::is_timeout(&err) => (
            408,
            "the request head did not arrive whole within --head-timeout",
        ),
        HeadError::Io(err) => {
            proxy
                .log
                .peer(peer, format_args!("connection failed: {err}"));
            return None;
        }
        // 431 for a head over the limits, 400 for a malformed one.
        err => match err.status().unwrap_or(400) {
            431 => (
                431,
                "the request head is larger than 64 KiB or has more than 100 fields",
            ),
            status => (status, "the request head is malformed"),
        },
    };
    let bytes = send_error(&mut client.writer, status, message, proxy).unwrap_or(0);
    let outcome = Outcome::error(status, bytes);
    access_log(proxy, peer, Instant::now(), "-", "-", &outcome);
    None
}

/// Reads a request head: the first byte may take `--idle-timeout` (a
/// kept-alive connection waiting for its next request), the whole head at
/// most `--head-timeout` from then on. Without this deadline a client that
/// sends one byte every few seconds holds its slot for ever (slowloris).
/// A failure says whether the head had begun to arrive.
fn read_head_in_time(client: &mut Client, proxy: &Proxy) -> Result<RequestHead, (HeadError, bool)> {
    match client.reader.fill_buf() {
        Ok([]) => return Err((HeadError::Closed, false)),
        Ok(_) => {}
        Err(err) => return Err((HeadError::Io(err), false)),
    }
    let started = Instant::now();
    // Usually the whole head came in that one read: no deadline to keep.
    if client.reader.buffer().windows(2).any(|w| w == b"\n\n")
        || client.reader.buffer().windows(4).any(|w| w == b"\r\n\r\n")
    {
        return RequestHead::read_from(&mut client.reader).map_err(|err| (err, true));
    }
    let mut timed = Deadline {
        reader: &mut client.reader,
        until: started + proxy.head_timeout,
    };
    let head = RequestHead::read_from(&mut timed);
    // Bodies and the wait for the next request use --idle-timeout again.
    let _ = client
        .reader
        .get_ref()
        .set_read_timeout(Some(proxy.idle_timeout));
    head.map_err(|err| (err, true))
}

/// A reader whose every `recv` waits only until `until`: the socket's
/// receive timeout (SO_RCVTIMEO) is set to the time left before each one.
struct Deadline<'a> {
    reader: &'a mut BufReader<TcpStream>,
    until: Instant,
}

impl Deadline<'_> {
    fn arm(&mut self) -> io::Result<()> {
        if !self.reader.buffer().is_empty() {
            return Ok(());
        }
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.reader.get_ref().set_read_timeout(Some(left))
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm()?;
        self.reader.read(buf)
    }
}

impl BufRead for Deadline<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.arm()?;
        self.reader.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.reader.consume(amount);
    }
}

fn connect_client(stream: TcpStream, peer: SocketAddr, proxy: &Proxy) -> io::Result<Client> {
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
        peer,
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
