//! The experiment of labs/02-client-sockets.md: a thread per connection
//! against one connection at a time, with a slow client holding on.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::harness::{self, Program, WAIT, exit_text, local_port, ms, shown};
use crate::{Experiment, Report};

pub const EXPERIMENTS: &[Experiment] = &[Experiment {
    name: "thread-per-connection",
    worksheet: "labs/02-client-sockets.md, the TCP server socket",
    summary: "a slow client holds a connection: threaded_server serves a second client at once, --single only after the slow one",
    run: thread_per_connection,
}];

/// How long the slow client holds its connection before it speaks.
const HOLD: Duration = Duration::from_millis(400);

/// The banner threaded_server answers every client with.
const BANNER: &str = "threaded_server over TCP is working";

fn thread_per_connection(r: &mut Report) -> anyhow::Result<()> {
    // A thread per connection.
    let (server, addr) = Program::server("threaded_server", &[])?;
    r.did(format!("started threaded_server on {addr}"));
    let mut slow = slow_client(&server, addr)?;
    r.did(
        "a slow client connected and sends nothing yet: the server's thread for it waits in read()",
    );
    let port = addr.port().to_string();
    let args = ["--port", &port, "--timeout", "5s", "hello"];
    r.did(format!(
        "{} while the slow client holds on",
        shown("tcp_client", &args)
    ));
    let second = harness::run("tcp_client", &args)?;
    r.saw(format!(
        "tcp_client: {} after {}: {}",
        exit_text(second.status),
        ms(second.elapsed),
        second.stdout_line("From Server: ").unwrap_or("(no reply)")
    ));
    let slow_banner = finish_slow_client(&mut slow)?;
    r.saw(format!(
        "then the slow client spoke and got {slow_banner:?}"
    ));
    r.why(
        "accept() returned the second connection at once and a new thread served it; the \
         slow client's thread was blocked in its own read(), which held up nobody else",
    );
    r.check(
        second.code() == Some(0)
            && second
                .stdout_line("From Server: ")
                .is_some_and(|l| l.ends_with(BANNER)),
        "threaded: the second client is served at once, while the slow one still holds its connection",
    );

    // One connection at a time.
    let (server, addr) = Program::server("threaded_server", &["--single"])?;
    r.did(format!("started threaded_server --single on {addr}"));
    let mut slow = slow_client(&server, addr)?;
    let port = addr.port().to_string();
    let args = ["--port", &port, "--timeout", "5s", "hello"];
    let started = Instant::now();
    let mut second = Program::start("tcp_client", &args)?;
    r.did(format!(
        "a slow client connected and holds on for {}; {} meanwhile",
        humantime::format_duration(HOLD),
        shown("tcp_client", &args)
    ));
    let early = second.exit_within(HOLD);
    let accepted: Vec<String> = server
        .lines_so_far()
        .into_iter()
        .filter(|l| l.contains("Accepted connection from"))
        .collect();
    r.saw(format!(
        "after {}: tcp_client {}; the server had accepted {} connection(s)",
        humantime::format_duration(HOLD),
        if early.is_some() {
            "had finished"
        } else {
            "was still waiting"
        },
        accepted.len()
    ));
    let slow_local = slow.local_addr()?;
    finish_slow_client(&mut slow)?;
    r.did("the slow client sent its message and half-closed");
    let status = second.wait_for_exit(WAIT)?;
    let waited = started.elapsed();
    let stdout = second.lines_so_far().join("\n");
    let reply = stdout
        .lines()
        .find(|l| l.starts_with("From Server: "))
        .unwrap_or("(no reply)")
        .to_string();
    r.saw(format!(
        "tcp_client: {} after {}: {reply}",
        exit_text(status),
        ms(waited)
    ));
    let second_port = local_port(&stdout).context("tcp_client printed no local address")?;
    let slow_done = server.expect_line(&format!("{slow_local} sent the banner and closed"))?;
    let second_accepted = server.expect_line(&format!("127.0.0.1:{second_port}"))?;
    r.saw(format!("threaded_server: {slow_done}"));
    r.saw(format!("threaded_server: {second_accepted}"));
    let lines = server.lines_so_far();
    let position = |needle: &str| lines.iter().position(|l| l.contains(needle));
    let in_order = position(&format!("{slow_local} sent the banner and closed"))
        < position(&format!("Accepted connection from 127.0.0.1:{second_port}"));
    r.why(
        "--single serves each connection in the accept loop itself: while it waits on the slow \
         client's read(), nobody calls accept(). The second client's handshake completed in \
         the kernel (its connect() and send() succeeded) and it waited in the listen backlog",
    );
    r.check(
        early.is_none() && accepted.len() == 1,
        format!(
            "--single: the second client is not served while the slow one holds on ({})",
            humantime::format_duration(HOLD)
        ),
    );
    r.check(
        status.success() && reply.ends_with(BANNER) && in_order && waited >= HOLD,
        format!(
            "--single: it is accepted and served only after the slow client is done, {} after it started",
            ms(waited)
        ),
    );
    Ok(())
}

/// Connects and waits until the server has accepted; sends nothing.
fn slow_client(server: &Program, addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let slow = TcpStream::connect_timeout(&addr, WAIT)
        .with_context(|| format!("failed to connect to {addr}"))?;
    slow.set_read_timeout(Some(WAIT))?;
    server.expect_line(&format!("Accepted connection from {}", slow.local_addr()?))?;
    Ok(slow)
}

/// The slow client finally speaks, half-closes and reads the banner.
fn finish_slow_client(slow: &mut TcpStream) -> anyhow::Result<String> {
    slow.write_all(b"slow")?;
    slow.shutdown(Shutdown::Write)?;
    let mut banner = String::new();
    slow.read_to_string(&mut banner)
        .context("the slow client got no banner")?;
    Ok(banner.trim_end().to_string())
}
