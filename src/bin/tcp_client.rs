//! tcp_client: sends a line to tcp_server over TCP and prints the reply.
//!
//! The K&R TCPClient lab. Before any data moves, `connect()` runs TCP's
//! three-way handshake (SYN, SYN-ACK, ACK); if no program listens on the
//! port, the server's host answers the SYN with a RST and `connect()` fails
//! at once with "connection refused" (ECONNREFUSED; Windows sends the SYN
//! twice more first and says WSAECONNREFUSED, 10061, about 2 s later, so
//! there the connect() bound is at least 3 s). Once connected, the client sends its
//! line, then `shutdown(Write)`: a FIN that tells the server the message is
//! complete. It reads the reply until the server's own FIN.
//!
//! Terminal 1: `cargo run --bin tcp_server`
//! Terminal 2: `cargo run --bin tcp_client -- hello`
//! Worksheet:  labs/01-udp-tcp.md

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use socketlab::cli::{self, ClientArgs};
use socketlab::connect;
use socketlab::explain::{self, Proto, Step};
use socketlab::rtt;

/// Send a line over TCP and print the server's reply (K&R TCPClient)
#[derive(Parser, Debug)]
#[command(name = "tcp_client", version)]
struct Cli {
    /// The message to send (words are joined by spaces); with none, prompt for a line on stdin
    message: Vec<String>,

    #[command(flatten)]
    server: ClientArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let timeout = cli.server.timeout;
    // Like the classic client: connect first, then ask for the sentence.
    let mut stream = connect::tcp(&cli.server.resolve()?, timeout)?;
    let peer = stream
        .peer_addr()
        .context("failed to read the server's address")?;
    let local = stream
        .local_addr()
        .context("failed to read the local address")?;
    let message = cli::message_or_prompt(&cli.message)?;
    // Both directions are bounded: a server that never reads would
    // otherwise block a long send for ever once its buffers are full.
    stream
        .set_write_timeout(Some(timeout))
        .context("failed to set the send timeout")?;
    stream
        .set_read_timeout(Some(timeout))
        .context("failed to set the receive timeout")?;

    let started = Instant::now();
    let send_step = || Step::Send(Proto::Tcp, peer);
    stream.write_all(&message).with_context(send_step)?;
    // shutdown(Write) sends a FIN: "that was all", so the server's read
    // returns 0 and it can finish its reply.
    let reset_already = match stream.shutdown(Shutdown::Write) {
        // ENOTCONN: the server's RST arrived before our FIN could leave (a
        // server that closed with part of the message unread, such as
        // `tcp_server --once`). What it sent before the RST can still be read.
        Err(err) if err.kind() == ErrorKind::NotConnected => true,
        done => {
            done.with_context(send_step)?;
            false
        }
    };
    let (reply, end) = read_reply(&mut stream, peer)?;
    let end = if reset_already { End::Reset } else { end };
    let rtt = started.elapsed();
    print_reply(&reply, &end, rtt, peer, local)
}

/// Prints the reply, the RTT line, and a `note:` if the reply did not end
/// with the server's FIN.
fn print_reply(
    reply: &[u8],
    end: &End,
    rtt: Duration,
    peer: SocketAddr,
    local: SocketAddr,
) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    // The reply is printed as the bytes that arrived: the server changes
    // bytes, not text.
    stdout
        .write_all(b"From Server: ")
        .and_then(|()| stdout.write_all(reply))
        .and_then(|()| writeln!(stdout))
        .context("failed to write to stdout")?;
    writeln!(
        stdout,
        "RTT {} ({} bytes from {peer} to local address {local})",
        rtt::ms(rtt),
        reply.len()
    )
    .context("failed to write to stdout")?;
    let note = match end {
        End::Fin => return Ok(()),
        End::Reset => {
            "the server ended the connection with a RST, not a FIN: it closed with part of the message unread"
        }
        End::Timeout => {
            "the server sent this but did not close the connection (no FIN) within --timeout"
        }
    };
    writeln!(stdout, "note: {note}").context("failed to write to stdout")?;
    Ok(())
}

/// How the server ended its reply.
enum End {
    /// Its FIN: a read returned 0, the normal end.
    Fin,
    /// A RST after some data: it closed with our bytes still unread, and its
    /// kernel answered the close with a reset (RFC 1122 §4.2.2.13).
    Reset,
    /// Nothing more, but no FIN either, before the read timeout.
    Timeout,
}

/// Reads the reply until the server's FIN. A reset or a timeout *after*
/// some data still leaves a reply to print; before any data they are errors.
fn read_reply(stream: &mut TcpStream, peer: SocketAddr) -> anyhow::Result<(Vec<u8>, End)> {
    let mut reply = Vec::new();
    // read_to_end keeps what it read before an error in `reply`.
    let end = match stream.read_to_end(&mut reply) {
        Ok(_) => End::Fin,
        Err(err) if reply.is_empty() => {
            return Err(err).context(Step::Receive(Proto::Tcp, peer));
        }
        Err(err) if err.kind() == ErrorKind::ConnectionReset => End::Reset,
        Err(err) if explain::is_timeout(&err) => End::Timeout,
        Err(err) => {
            return Err(err).context(Step::Receive(Proto::Tcp, peer));
        }
    };
    Ok((reply, end))
}
