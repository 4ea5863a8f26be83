//! CONNECT tunnels (RFC 9110 §9.3.6): `CONNECT example.org:443 HTTP/1.1`
//! asks the proxy for a TCP connection to example.org:443. After the proxy
//! answers `200`, the client connection carries raw bytes both ways (for
//! HTTPS, a TLS session the proxy cannot read), so the proxy just copies:
//! one thread per direction, and when one side sends FIN
//! (`shutdown(Write)`), the other side gets a FIN too, while the opposite
//! direction keeps flowing (a TCP half-close).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use socketlab::explain;

use crate::allow;
use crate::http::{self, RequestHead};

use crate::proxy::{Client, Outcome, Proxy, connect_timed_out, send_error};

/// Opens the tunnel, copies until both directions have ended, and returns
/// what the access log shows: the status and the bytes relayed both ways.
pub fn open(client: &mut Client, request: &RequestHead, proxy: &Proxy) -> Outcome {
    let refused = |client: &mut Client, status, message| {
        let bytes = send_error(&mut client.writer, status, message, proxy).unwrap_or(0);
        outcome(status, bytes)
    };
    let Ok((host, Some(port))) = http::parse_authority(&request.target) else {
        return refused(client, 400, "CONNECT needs host:port");
    };
    if !proxy.connect_ports.contains(&port) {
        return refused(
            client,
            403,
            "CONNECT to this port is not allowed (see --connect-ports)",
        );
    }
    let Ok(addrs) = socketlab::cli::resolve(&host, port) else {
        return refused(client, 502, "the host name could not be resolved");
    };
    if let Some(rule) = allow::destination_refusal(client.peer.ip(), &addrs) {
        return refused(client, 403, rule);
    }
    if addrs.iter().any(|&addr| proxy.is_self(addr)) {
        return refused(
            client,
            508,
            "the tunnel would lead back to this proxy (a loop)",
        );
    }
    let server = match socketlab::connect::tcp(&addrs, proxy.origin_timeout) {
        Ok(server) => server,
        Err(err) if connect_timed_out(&err) => {
            return refused(
                client,
                504,
                "the server did not answer the connection attempt in time",
            );
        }
        Err(_) => return refused(client, 502, "the server refused the connection"),
    };
    let established = format!(
        "HTTP/1.1 200 Connection Established\r\nVia: {}\r\n\r\n",
        proxy.via(request.version)
    );
    if client.writer.write_all(established.as_bytes()).is_err() {
        return outcome(200, 0);
    }
    outcome(
        200,
        relay(client, server, proxy.tunnel_idle_timeout).unwrap_or(0),
    )
}

/// A tunnel's access log entry; the connection always ends with it.
fn outcome(status: u16, bytes: u64) -> Outcome {
    Outcome {
        status,
        cache: "TUNNEL",
        bytes,
        keep_alive: false,
    }
}

/// Copies bytes both ways until each direction has ended, passing on each
/// half-close, or until nothing has passed either way for
/// `--tunnel-idle-timeout`. Returns the bytes copied in both directions.
fn relay(client: &mut Client, server: TcpStream, idle: Duration) -> io::Result<u64> {
    // Each direction's recv wakes up after `idle` at the latest to look at
    // the other's progress: a download keeps its quiet upload direction
    // alive. TCP keepalive probes notice a peer that vanished without a FIN.
    for stream in [client.reader.get_ref(), &server] {
        stream.set_read_timeout(Some(idle))?;
        stream.set_write_timeout(Some(idle))?;
        socket2::SockRef::from(stream).set_keepalive(true)?;
    }
    // Bytes the client sent right behind its CONNECT head (a TLS
    // ClientHello, say) are already in our read buffer: they go first.
    let early = client.reader.buffer().to_vec();
    let mut to_server = server.try_clone()?;
    to_server.write_all(&early)?;
    let activity = Arc::new(Activity::new(idle));
    let client_in = client.reader.get_ref().try_clone()?;
    let up = Arc::clone(&activity);
    let upstream = thread::Builder::new().spawn(move || one_way(client_in, to_server, &up))?;
    let downstream = one_way(server, client.writer.try_clone()?, &activity);
    let upstream = upstream.join().unwrap_or(0);
    Ok(early.len() as u64 + upstream + downstream)
}

/// When a tunnel last carried a byte either way, shared by its two
/// directions.
struct Activity {
    started: Instant,
    idle: Duration,
    /// Milliseconds after `started`.
    last: AtomicU64,
}

impl Activity {
    fn new(idle: Duration) -> Activity {
        Activity {
            started: Instant::now(),
            idle,
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
    }

    fn idle_too_long(&self) -> bool {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last) >= self.idle
    }
}

/// Copies `from` to `to` until `from` sends FIN, then sends FIN on `to`
/// (`shutdown(Write)`): the half-close travels through the tunnel. A reset
/// on either side ends this direction the same way; a tunnel idle too long
/// is shut down both ways, which wakes the other direction too.
fn one_way(mut from: TcpStream, mut to: TcpStream, activity: &Activity) -> u64 {
    let mut buf = vec![0u8; 32 * 1024];
    let mut total = 0;
    loop {
        match from.read(&mut buf) {
            // read() returned 0: the peer sent FIN, this direction is done.
            Ok(0) => break,
            Ok(n) => {
                activity.touch();
                if to.write_all(&buf[..n]).is_err() {
                    // The other side is gone: stop reading this one too.
                    let _ = from.shutdown(Shutdown::Read);
                    break;
                }
                total += n as u64;
            }
            Err(err) if explain::is_timeout(&err) && !activity.idle_too_long() => {}
            Err(err) if explain::is_timeout(&err) => {
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
                return total;
            }
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    total
}
