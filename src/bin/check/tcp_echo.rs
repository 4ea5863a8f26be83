//! tcp-echo: the K&R TCPServer, read as the byte-stream lesson asks.
//!
//! The protocol: a client connects, sends any bytes, half-closes
//! (`shutdown(Write)`, a FIN), and reads until the server closes. The
//! server sends back every byte it received, ASCII letters uppercased, and
//! closes. The classic TCPServer.py reads once with `recv(1024)`: it passes
//! every test whose message fits in one read, and fails the long messages
//! and the overlapping clients (it serves one connection at a time).

use std::net::SocketAddr;
use std::time::Duration;

use crate::Ctx;
use crate::report::{Failure, Outcome, Test};
use crate::wire::{self, End};

pub fn tests() -> Vec<Test> {
    vec![
        Test::new("short message comes back uppercased", 1, short),
        Test::new("read until FIN: 3000-byte message", 2, long_3000),
        Test::new(
            "read until FIN: message in one-byte writes with pauses",
            2,
            trickle,
        ),
        Test::new("read until FIN: 100 KB message", 1, long_100k),
        Test::new("read until FIN: 1 MiB message", 1, long_1m),
        Test::new(
            "two clients at once: a silent one does not block the other",
            2,
            overlap,
        ),
        Test::new(
            "a client resets mid-message; the server still answers the next",
            1,
            reset,
        ),
        Test::new(
            "every byte value: ASCII letters uppercased, the rest unchanged",
            1,
            binary,
        ),
    ]
}

fn short(ctx: &Ctx) -> Outcome {
    echo(ctx, b"hello, k&r tcp 2.0", 1 << 20, Duration::ZERO)
}

fn long_3000(ctx: &Ctx) -> Outcome {
    let message = wire::text(&mut ctx.rng("3000"), 3000);
    echo(ctx, &message, 1 << 20, Duration::ZERO)
}

fn trickle(ctx: &Ctx) -> Outcome {
    echo(ctx, b"one byte at a time", 1, Duration::from_millis(15))
}

fn long_100k(ctx: &Ctx) -> Outcome {
    let message = wire::text(&mut ctx.rng("100k"), 100 * 1000);
    echo(ctx, &message, 1 << 20, Duration::ZERO)
}

fn long_1m(ctx: &Ctx) -> Outcome {
    let message = wire::text(&mut ctx.rng("1m"), 1 << 20);
    echo(ctx, &message, 64 * 1024, Duration::ZERO)
}

fn binary(ctx: &Ctx) -> Outcome {
    let message = wire::every_byte(2);
    echo(ctx, &message, 1 << 20, Duration::ZERO).map_err(|f| {
        if f.received.as_ref().is_some_and(|r| r.is_empty()) {
            Failure {
                hint: NOT_UTF8.into(),
                ..f
            }
        } else {
            f
        }
    })
}

const NOT_UTF8: &str = "no reply to bytes that are not UTF-8: a server that decodes what it \
    receives as text (Python's .decode()) raises UnicodeDecodeError on them, and dies if nothing \
    catches it; uppercase the bytes themselves (bytes.upper()), as a TCP read may also split a \
    multi-byte character";

fn overlap(ctx: &Ctx) -> Outcome {
    let silent = wire::connect(ctx.addr(), ctx.timeout)?;
    let second = echo(ctx, b"second client", 1 << 20, Duration::ZERO);
    drop(silent);
    second.map_err(|f| match f.received.as_deref() {
        Some([]) => Failure {
            hint: "while one client was connected and silent, another got no reply: the server \
                   serves one connection at a time (it is blocked in recv() on the first). Give \
                   each connection its own thread, or wait on all sockets with select()/poll()"
                .into(),
            ..f
        },
        _ => f,
    })
}

fn reset(ctx: &Ctx) -> Outcome {
    wire::rude_clients(ctx.addr(), ctx.timeout)?;
    echo(ctx, b"still there?", 1 << 20, Duration::ZERO).map_err(|f| {
        f.also(
            "two clients had just reset their connections, one in the middle of a message and \
             one before its first byte: a server must treat ECONNRESET as that client's end, \
             not its own",
        )
    })
}

/// Sends `message` (in pieces of `piece` bytes, `pause` apart), half-closes,
/// and expects it back uppercased, then the server's FIN.
fn echo(ctx: &Ctx, message: &[u8], piece: usize, pause: Duration) -> Outcome {
    let (got, end) = wire::exchange(ctx.addr(), message, piece, pause, ctx.timeout)?;
    judge(ctx.addr(), message, &got, &end)
}

fn judge(addr: SocketAddr, message: &[u8], got: &[u8], end: &End) -> Outcome {
    let want = wire::upper(message);
    if got == want && *end == End::Closed {
        return Ok(());
    }
    if got == want {
        return Err(Failure::new(
            format!("the reply was right, but then {}", end.describe()),
            "after the client's FIN the server should send the rest of its reply and close \
             (FIN), so that the client's read returns 0 and it knows the reply is whole",
        ));
    }
    let error = format!(
        "{addr} sent {} bytes back for a {}-byte message; {}",
        got.len(),
        message.len(),
        end.describe()
    );
    Err(Failure::bytes(
        &want,
        got,
        error,
        cut_hint(message.len(), got, &want, end),
    ))
}

/// What a reply cut short says about how the server read.
pub fn cut_hint(sent: usize, got: &[u8], want: &[u8], end: &End) -> String {
    if !want.starts_with(got) {
        return "the bytes differ: the server must send back exactly what it received, with only \
                a-z changed to A-Z"
            .into();
    }
    if got.is_empty() && *end == End::TimedOut {
        return "no reply at all: the server never answered (is it still reading? it should reply \
                once recv() returns 0, the client's FIN)"
            .into();
    }
    if [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536].contains(&got.len()) {
        return format!(
            "your server read once with recv({n}): a {sent}-byte message came back cut at {n}. \
             TCP is a byte stream: call recv() in a loop until it returns 0 (b'' in Python), the \
             client's FIN",
            n = got.len()
        );
    }
    format!(
        "the reply stopped after {} of {} bytes: the server answered what its first recv() \
         returned (one read gets whatever has arrived, even a single byte) or stopped reading \
         before the client's FIN; call recv() in a loop until it returns 0. A server that closes \
         with unread bytes sends a RST, which can also destroy its own reply",
        got.len(),
        want.len()
    )
}
