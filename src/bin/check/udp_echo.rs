//! udp-echo: the K&R UDPServer. Each datagram is answered by one datagram,
//! its ASCII letters uppercased, sent to the address it came from.
//!
//! UDP keeps message boundaries, so two datagrams sent back to back must
//! come back as two replies; a datagram longer than the server's buffer is
//! cut (the classic `recvfrom(2048)`), and the rest is lost for ever.

use std::net::UdpSocket;
use std::time::Duration;

use crate::Ctx;
use crate::report::{Failure, Outcome, Test, same};
use crate::wire;

pub fn tests() -> Vec<Test> {
    vec![
        Test::new("a datagram comes back uppercased", 1, short),
        Test::new(
            "the reply goes to the sender's address and port",
            1,
            two_senders,
        ),
        Test::new(
            "two datagrams back to back keep their boundaries",
            1,
            boundaries,
        ),
        Test::new("a 3000-byte datagram comes back whole", 2, long),
        Test::new(
            "an empty datagram; the server still answers the next",
            1,
            empty,
        ),
        Test::new(
            "every byte value: ASCII letters uppercased, the rest unchanged",
            1,
            binary,
        ),
    ]
}

fn socket(ctx: &Ctx) -> Result<UdpSocket, Failure> {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.connect(ctx.addr()).map(|()| s))
        .map_err(|e| {
            Failure::new(
                format!("cannot open a UDP socket: {e}"),
                "check itself failed",
            )
        })?;
    let _ = socket.set_read_timeout(Some(ctx.timeout));
    Ok(socket)
}

/// The next datagram within the timeout.
fn receive(socket: &UdpSocket, ctx: &Ctx) -> Result<Vec<u8>, Failure> {
    let mut buf = vec![0u8; 65536];
    let _ = socket.set_read_timeout(Some(ctx.timeout));
    match socket.recv(&mut buf) {
        Ok(n) => Ok(buf[..n].to_vec()),
        // On a connected UDP socket an ICMP port unreachable surfaces as ECONNREFUSED.
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => Err(Failure::new(
            format!("recv from {} failed: {err}", ctx.addr()),
            "an ICMP port unreachable came back: nothing listens on that UDP port (did the server exit?)",
        )),
        // A timeout (WouldBlock on Unix, TimedOut on Windows) or another error: no reply.
        Err(_) => Err(no_reply(ctx)),
    }
}

fn no_reply(ctx: &Ctx) -> Failure {
    Failure::new(
        format!("no reply from {} within {:?}", ctx.addr(), ctx.timeout),
        "UDP says nothing when a datagram is lost or ignored: the server never sent a reply \
         (did it crash on this datagram, or reply to another address?); a reply sent from \
         another socket or port is dropped too, as check's socket is connected to the server's \
         address: reply with the socket that received the datagram",
    )
}

fn ask(ctx: &Ctx, message: &[u8]) -> Result<Vec<u8>, Failure> {
    let socket = socket(ctx)?;
    send(&socket, message)?;
    receive(&socket, ctx)
}

fn send(socket: &UdpSocket, message: &[u8]) -> Result<(), Failure> {
    socket.send(message).map(drop).map_err(|e| {
        Failure::new(
            format!("send failed: {e}"),
            "check could not send the datagram",
        )
    })
}

fn short(ctx: &Ctx) -> Outcome {
    let got = ask(ctx, b"hello, k&r udp 2.0")?;
    same(
        "the reply",
        b"HELLO, K&R UDP 2.0",
        &got,
        "the reply must be the datagram with a-z made A-Z",
    )
}

fn two_senders(ctx: &Ctx) -> Outcome {
    let (a, b) = (socket(ctx)?, socket(ctx)?);
    send(&a, b"from a")?;
    send(&b, b"from b")?;
    same(
        "the reply to the second sender",
        b"FROM B",
        &receive(&b, ctx)?,
        "reply with sendto() to the address recvfrom() returned for this datagram",
    )?;
    same(
        "the reply to the first sender",
        b"FROM A",
        &receive(&a, ctx)?,
        "reply with sendto() to the address recvfrom() returned for this datagram",
    )
}

fn boundaries(ctx: &Ctx) -> Outcome {
    let socket = socket(ctx)?;
    send(&socket, b"first")?;
    send(&socket, b"second")?;
    let one = receive(&socket, ctx)?;
    let two = receive(&socket, ctx)?;
    let hint = "each datagram gets its own reply datagram: UDP keeps message boundaries";
    same("the first reply", b"FIRST", &one, hint)?;
    same("the second reply", b"SECOND", &two, hint)
}

fn long(ctx: &Ctx) -> Outcome {
    let message = wire::text(&mut ctx.rng("udp3000"), 3000);
    let got = ask(ctx, &message)?;
    let want = wire::upper(&message);
    let hint = if got.len() < want.len() && want.starts_with(&got) {
        format!(
            "your server read at most {n} bytes per datagram (recvfrom({n})): the rest of a \
             3000-byte datagram was discarded by the kernel, not kept for the next read. A UDP \
             datagram can carry up to 65507 bytes: read with a buffer that large",
            n = got.len()
        )
    } else {
        "the reply must be the whole datagram with a-z made A-Z".into()
    };
    same("the reply", &want, &got, &hint)
}

fn empty(ctx: &Ctx) -> Outcome {
    let socket = socket(ctx)?;
    send(&socket, b"")?;
    // An empty reply is fine, and so is none; then the server must answer.
    std::thread::sleep(Duration::from_millis(50));
    send(&socket, b"after empty")?;
    let mut got = receive(&socket, ctx)?;
    if got.is_empty() {
        got = receive(&socket, ctx)?;
    }
    same(
        "the reply after an empty datagram",
        b"AFTER EMPTY",
        &got,
        "a zero-length datagram is valid UDP: recvfrom() returns 0 bytes, which is not an end of anything",
    )
}

fn binary(ctx: &Ctx) -> Outcome {
    let message = wire::every_byte(2);
    let got = ask(ctx, &message).map_err(|f| Failure {
        hint: "no reply to a datagram of bytes that are not UTF-8: a server that decodes it as \
               text (Python's .decode()) raises UnicodeDecodeError, and dies if nothing catches \
               it; uppercase the bytes (bytes.upper())"
            .into(),
        ..f
    })?;
    same(
        "the reply",
        &wire::upper(&message),
        &got,
        "only a-z may change; every other byte comes back as it was",
    )
}
