//! udp_send: sends one UDP datagram to any host and port and prints every reply.
//!
//! The UDP client socket of seed 003. A UDP client needs no connection and
//! no handshake: it creates a socket, `bind()`s it to port 0 (the OS picks
//! a free port right then), sends one datagram with `sendto()`, and waits
//! with `recvfrom()`, which also says *who* answered. The socket
//! is left unconnected, so it accepts a reply from any address and prints
//! that address. The price: if nothing listens on the port, the ICMP "port
//! unreachable" that comes back is not reported on an unconnected socket,
//! and all the client sees is silence until its timeout.
//!
//! Any UDP peer will do; seed 003 used ncat, which echoes with `cat`:
//!
//! Terminal 1: `ncat -u -l 127.0.0.1 8080 -k --sh-exec cat`
//! Terminal 2: `cargo run --bin udp_send -- --port 8080 hello udp`
//! (or against `cargo run --bin udp_server`: `udp_send --port 12000 hello`)
//! Worksheet:  labs/02-client-sockets.md

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use socketlab::cli::{self, ClientArgs};
use socketlab::deadline::recv_until;
use socketlab::explain::{self, Proto, Step};
use socketlab::printable;

/// Send one UDP datagram to HOST:PORT and print each reply with its sender (seed 003)
#[derive(Parser, Debug)]
#[command(
    name = "udp_send",
    version,
    mut_arg("port", |a| a.default_value("8080")),
    mut_arg("timeout", |a| a.help("How long to listen for replies after sending (e.g. 500ms, 2s)"))
)]
struct Cli {
    #[command(flatten)]
    client: ClientArgs,

    /// The message to send, as one datagram (words are joined with spaces);
    /// with none, it is read from stdin
    message: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    // resolve() fails rather than return no address, and lists IPv4 first.
    let peer = cli.client.resolve()?[0];
    let message = cli::message_or_prompt(&cli.message)?;
    explain::check_datagram_len(message.len())?;
    let socket = unconnected_socket(peer)?;
    send(&socket, peer, &message)?;
    let replies = print_replies(&socket, peer, cli.client.timeout)?;
    if replies == 0 {
        // Report the silence as the recvfrom() timeout it was (EAGAIN), so
        // the hint explains what silence means over UDP.
        let silence = std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            format!(
                "no reply within {}",
                humantime::format_duration(cli.client.timeout)
            ),
        );
        return Err(silence).context(Step::Receive(Proto::Udp, peer));
    }
    Ok(())
}

/// A UDP socket on an OS-chosen port (`bind` to port 0), of the same
/// address family as the peer. Not `connect()`ed: replies may come from anywhere.
fn unconnected_socket(peer: SocketAddr) -> anyhow::Result<UdpSocket> {
    let any: SocketAddr = match peer {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    UdpSocket::bind(any).context(Step::Bind(Proto::Udp, any))
}

/// `sendto()`: one datagram, sent whole or not at all.
fn send(socket: &UdpSocket, peer: SocketAddr, message: &[u8]) -> anyhow::Result<()> {
    let step = || Step::Send(Proto::Udp, peer);
    let sent = socket.send_to(message, peer).with_context(step)?;
    // The kernel chose the source port at bind() to port 0, before this
    // sendto(); the peer sees it as the datagram's source port.
    let local = socket.local_addr().with_context(step)?;
    println!("sent {sent} bytes to {peer} from port {}", local.port());
    Ok(())
}

/// Prints every datagram that arrives within `listen` of now, with the
/// address it came from, and returns how many arrived. UDP has no "end of
/// the reply", so only the deadline ends the wait.
fn print_replies(socket: &UdpSocket, peer: SocketAddr, listen: Duration) -> anyhow::Result<usize> {
    let deadline = Instant::now() + listen;
    // 65535 bytes hold the largest datagram UDP can carry, so none is cut short.
    let mut buf = vec![0u8; 65535];
    let mut replies = 0;
    let receive = Step::Receive(Proto::Udp, peer);
    // recvfrom() also says who sent each datagram.
    while let Some((len, from)) = recv_until(socket, &mut buf, deadline).context(receive.clone())? {
        replies += 1;
        let text = printable::quoted(&buf[..len], usize::MAX);
        println!("reply from {from}, {len} bytes: {text}");
    }
    Ok(replies)
}
