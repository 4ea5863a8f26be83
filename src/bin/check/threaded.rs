//! threaded-server: seed 003's TCP server. A client connects, sends a
//! message and half-closes; the server replies with something (a banner)
//! and closes. The lesson is the thread per connection: a client that
//! connects and says nothing must not keep the next one waiting.

use std::io::Write;
use std::time::Duration;

use crate::Ctx;
use crate::report::{Failure, Outcome, Test};
use crate::wire::{self, End};

pub fn tests() -> Vec<Test> {
    vec![
        Test::new("a client gets a reply and the server closes", 1, one),
        Test::new("ten clients one after another", 1, ten),
        Test::new(
            "a silent client does not keep the next one waiting",
            3,
            silent,
        ),
        Test::new("five clients connected at once are all answered", 1, five),
        Test::new(
            "a client resets mid-message; the server still answers the next",
            1,
            reset,
        ),
    ]
}

/// One conversation: a reply (anything), then the server's FIN.
fn converse(ctx: &Ctx, message: &[u8]) -> Outcome {
    let (got, end) = wire::exchange(ctx.addr(), message, 1 << 20, Duration::ZERO, ctx.timeout)?;
    if got.is_empty() {
        return Err(Failure::new(
            format!(
                "no reply to {:?}; {}",
                String::from_utf8_lossy(message),
                end.describe()
            ),
            "the server must answer every client (seed 003 sends a banner such as \
             'server over TCP is working') after it has read the message",
        ));
    }
    if end != End::Closed {
        return Err(Failure::new(
            format!(
                "a {}-byte reply came, but then {}",
                got.len(),
                end.describe()
            ),
            "after its reply the server should close the connection (FIN), so the client knows the reply is over",
        ));
    }
    Ok(())
}

fn one(ctx: &Ctx) -> Outcome {
    converse(ctx, b"hello from check")
}

fn ten(ctx: &Ctx) -> Outcome {
    (0..10).try_for_each(|i| converse(ctx, format!("client {i}").as_bytes()))
}

fn silent(ctx: &Ctx) -> Outcome {
    let quiet = wire::connect(ctx.addr(), ctx.timeout)?;
    let second = converse(ctx, b"second client");
    drop(quiet);
    second.map_err(|f| Failure {
        hint: "while one client was connected and silent, another got no reply in time: the \
               server serves one connection at a time, blocked in recv() on the first. Start a \
               thread per accepted connection (threading.Thread(target=handle_client, ...))"
            .into(),
        ..f
    })
}

fn five(ctx: &Ctx) -> Outcome {
    let mut streams = Vec::new();
    for _ in 0..5 {
        streams.push(wire::connect(ctx.addr(), ctx.timeout)?);
    }
    for (i, s) in streams.iter_mut().enumerate() {
        let _ = s.write_all(format!("overlapping client {i}").as_bytes());
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let deadline = std::time::Instant::now() + ctx.timeout;
    for (i, s) in streams.iter_mut().enumerate() {
        let (got, end) = wire::read_until_end(s, deadline, 1 << 20);
        if got.is_empty() || end != End::Closed {
            return Err(Failure::new(
                format!(
                    "client {i} of 5: {} reply bytes; {}",
                    got.len(),
                    end.describe()
                ),
                "every client that connected must be answered, and each connection closed",
            ));
        }
    }
    Ok(())
}

fn reset(ctx: &Ctx) -> Outcome {
    wire::rude_clients(ctx.addr(), ctx.timeout)?;
    converse(ctx, b"still there?").map_err(|f| {
        f.also("two clients had just reset their connections (one mid-message): a server logs that client's ECONNRESET and goes on")
    })
}
