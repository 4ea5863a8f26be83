//! One client's session on a worker: the key exchange, then a request
//! frame and its answer, again and again, until the client leaves.
//!
//! Every wait has a limit, so a client cannot keep a worker from the
//! others: the handshake line by `--handshake-timeout`, each request frame
//! by `--request-timeout` once it has begun, and the pause before the next
//! request by `--idle-timeout`. The first two are deadlines for the whole
//! line or frame, not for each `read()`: see `socketlab::deadline`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use socketlab::deadline::Timed;
use socketlab::explain::is_timeout;
use socketlab::listen::close_gracefully;
use socketlab::printable;
use socketlab::random::Rng;
use socketlab::time_service::{
    FrameError, Hello, KeyPair, MAX_LINE, caesar_key, read_frame, write_frame,
};

use crate::Service;
use crate::answers::answer;

/// Serves one client from its key exchange until it leaves; logs how it ended.
pub fn serve_client(stream: TcpStream, peer: SocketAddr, service: &Service) {
    service.log.peer(peer, "connection open");
    match converse(&stream, peer, service) {
        Ok(()) => service.log.peer(peer, "connection closed"),
        Err(err) => service
            .log
            .peer(peer, format_args!("connection closed: {err:#}")),
    }
    // FIN first, then read what the client still sends until its FIN (at
    // most a second): closing with unread input would send a RST, which
    // can destroy an ERROR line or frame the client has not read yet.
    close_gracefully(&stream);
}

/// The whole session: the key exchange, then one answer frame per request
/// frame until the client closes.
fn converse(stream: &TcpStream, peer: SocketAddr, service: &Service) -> anyhow::Result<()> {
    let mut writer = stream
        .try_clone()
        .context("failed to duplicate the socket")?;
    // A client that stops reading its answers must not block a worker in
    // write() for ever once its socket's send buffer is full (SO_SNDTIMEO).
    writer
        .set_write_timeout(Some(service.request_timeout))
        .context("failed to set a send timeout")?;
    let deadline = Instant::now();
    let mut reader = BufReader::new(Timed { stream, deadline });
    let Some(key) = handshake(&mut reader, &mut writer, peer, service)? else {
        bail!("the client left before the key exchange");
    };
    service.log.peer(
        peer,
        if key == 0 {
            "handshake done, plain text"
        } else {
            "handshake done, key agreed"
        },
    );
    requests(&mut reader, &mut writer, key, peer, service)
}

/// The server's side of the key exchange: returns the Caesar key (0 in
/// `--plain` mode), or None if the client closed without a word. The whole
/// exchange, repeats on key 0 included, must be over by one deadline.
fn handshake(
    reader: &mut BufReader<Timed<'_>>,
    writer: &mut TcpStream,
    peer: SocketAddr,
    service: &Service,
) -> anyhow::Result<Option<u8>> {
    let mut rng = Rng::from_entropy();
    reader.get_mut().allow(service.handshake_timeout);
    loop {
        let line = match read_hello_line(reader) {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(None),
            Err(err) if is_timeout(&err) => bail!(
                "no handshake line within {} (the worker is freed for the next client)",
                humantime::format_duration(service.handshake_timeout)
            ),
            Err(err) => return Err(err).context("failed to read the handshake"),
        };
        let hello = match line {
            HelloLine::TooLong(start) => return refuse(writer, &not_a_hello(&start)),
            HelloLine::Line(line) => match Hello::parse(&line) {
                Ok(hello) => hello,
                Err(why) => return refuse(writer, &why),
            },
        };
        let Some(key) = agree(hello, writer, &mut rng, service)? else {
            // The shared secret gave key 0; the client, which computes the
            // same secret, sends a new key.
            service.log.peer(
                peer,
                "shared secret 256 gives Caesar key 0 (plain text): exchanging again",
            );
            continue;
        };
        return Ok(Some(key));
    }
}

/// Answers one handshake line: `Some(key)` once agreed, `None` if the
/// exchange gave key 0 and must be repeated, an error if refused.
fn agree(
    hello: Hello,
    writer: &mut TcpStream,
    rng: &mut Rng,
    service: &Service,
) -> anyhow::Result<Option<u8>> {
    match (hello, service.plain) {
        (Hello::Plain, true) => {
            send_line(writer, Hello::Plain)?;
            Ok(Some(0))
        }
        (Hello::Plain, false) => refuse(
            writer,
            "this server encrypts: send KEY <your public key> (run time_client without --plain)",
        ),
        (Hello::Key(_), true) => refuse(
            writer,
            "this server is plain: send PLAIN (run time_client with --plain)",
        ),
        (Hello::Key(client_public), false) => {
            let pair = KeyPair::generate(rng);
            send_line(writer, Hello::Key(pair.public))?;
            let key = caesar_key(pair.shared_secret(client_public));
            Ok((key != 0).then_some(key))
        }
    }
}

/// A handshake line as read: whole, or cut at [`MAX_LINE`] bytes.
enum HelloLine {
    Line(String),
    TooLong(Vec<u8>),
}

/// Reads one handshake line of at most [`MAX_LINE`] bytes. `Ok(None)`: the
/// client closed without a word.
fn read_hello_line(reader: &mut BufReader<Timed<'_>>) -> io::Result<Option<HelloLine>> {
    let mut line = Vec::new();
    // take() bounds the read: a client that never sends '\n' cannot make
    // the server buffer without limit.
    reader.take(MAX_LINE).read_until(b'\n', &mut line)?;
    Ok(match line.last() {
        None => None,
        Some(b'\n') => Some(HelloLine::Line(String::from_utf8_lossy(&line).into_owned())),
        Some(_) if line.len() as u64 == MAX_LINE => Some(HelloLine::TooLong(line)),
        // A last line without '\n', ended by the client's FIN.
        Some(_) => Some(HelloLine::Line(String::from_utf8_lossy(&line).into_owned())),
    })
}

/// The refusal of a line longer than [`MAX_LINE`], whatever it began with
/// (labs/time-protocol.md, handshake errors).
fn not_a_hello(start: &[u8]) -> String {
    format!(
        "expected 'KEY <public key>' or 'PLAIN', got {}",
        printable::quoted(start, 40)
    )
}

/// Sends one handshake line.
fn send_line(writer: &mut TcpStream, hello: Hello) -> anyhow::Result<()> {
    writer
        .write_all(format!("{hello}\n").as_bytes())
        .context("failed to send the handshake line")
}

/// Tells the client why its handshake line is refused, then gives up on it.
fn refuse(writer: &mut TcpStream, why: &str) -> anyhow::Result<Option<u8>> {
    // Best effort: the client may already be gone.
    let _ = writer.write_all(format!("ERROR {why}\n").as_bytes());
    Err(anyhow!("handshake refused: {why}"))
}

/// Request frames and their answers, until the client closes, goes quiet
/// for `--idle-timeout`, or breaks the protocol.
fn requests(
    reader: &mut BufReader<Timed<'_>>,
    writer: &mut TcpStream,
    key: u8,
    peer: SocketAddr,
    service: &Service,
) -> anyhow::Result<()> {
    loop {
        if !next_request_begins(reader, writer, key, service)? {
            // read() returned 0 between frames: the client's FIN, a normal end.
            return Ok(());
        }
        reader.get_mut().allow(service.request_timeout);
        let request = match read_frame(reader, key) {
            Ok(Some(request)) => request,
            Ok(None) => return Ok(()),
            Err(FrameError::Io(err)) if is_timeout(&err) => {
                let limit = humantime::format_duration(service.request_timeout);
                let _ = write_frame(
                    writer,
                    key,
                    format!("ERROR request not complete within {limit}").as_bytes(),
                );
                bail!(
                    "request frame not complete within {limit} (--request-timeout; the worker is freed for the next client)"
                );
            }
            Err(err @ FrameError::TooLong(_)) => {
                // Answer, then close: the rest of the stream cannot be trusted.
                let _ = write_frame(writer, key, format!("ERROR {err}").as_bytes());
                return Err(err.into());
            }
            Err(err) => return Err(err.into()),
        };
        let answer = answer(&request, service.clock.now());
        service.log.peer(
            peer,
            format_args!("{} -> {answer}", printable::quoted(&request, 40)),
        );
        write_frame(writer, key, answer.as_bytes()).context("failed to send the answer")?;
    }
}

/// Waits up to `--idle-timeout` for the first byte of the next request.
/// `Ok(false)`: the client closed. A client that stays quiet is told why
/// it is closed, in an ERROR frame, and the worker is freed.
fn next_request_begins(
    reader: &mut BufReader<Timed<'_>>,
    writer: &mut TcpStream,
    key: u8,
    service: &Service,
) -> anyhow::Result<bool> {
    let idle = service.idle_timeout;
    reader.get_mut().allow(idle);
    // fill_buf() waits for bytes without consuming them: the frame reader
    // reads them next. (Bytes already buffered return at once.)
    match reader.fill_buf() {
        Ok(bytes) => Ok(!bytes.is_empty()),
        Err(err) if is_timeout(&err) => {
            let limit = humantime::format_duration(idle);
            let why = format!(
                "ERROR idle for {limit}: the server closes the session to free its worker for other clients"
            );
            let _ = write_frame(writer, key, why.as_bytes());
            bail!(
                "no request for {limit} (--idle-timeout): told the client; the worker is freed for the next client"
            )
        }
        Err(err) => Err(err).context("failed to read the next request"),
    }
}
