//! The experiments of labs/01-udp-tcp.md: client before server (K&R P28),
//! a fixed client port (P29), byte stream versus datagrams (P31), one
//! `recv(1024)` against a long message, and the pinger's seeded loss.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::thread;
use std::time::Duration;

use anyhow::{Context, bail};
use socketlab::random::Rng;

use crate::harness::{self, Finished, Program, WAIT, exit_text, local_port, ms, shown};
use crate::{Experiment, Report};

pub const EXPERIMENTS: &[Experiment] = &[
    Experiment {
        name: "tcp-client-first",
        worksheet: "labs/01-udp-tcp.md, P28a",
        summary: "tcp_client before any server: refused at once, the SYN answered by a RST",
        run: tcp_client_first,
    },
    Experiment {
        name: "udp-client-first",
        worksheet: "labs/01-udp-tcp.md, P28b",
        summary: "udp_client before any server: silence then a timeout; connected, refused by the ICMP port unreachable",
        run: udp_client_first,
    },
    Experiment {
        name: "different-ports",
        worksheet: "labs/01-udp-tcp.md, P28c",
        summary: "clients on other ports than the servers': the same failures, and the servers log nothing",
        run: different_ports,
    },
    Experiment {
        name: "bound-client-port",
        worksheet: "labs/01-udp-tcp.md, P29",
        summary: "udp_client from ephemeral ports, then bound to 5432; the server unchanged",
        run: bound_client_port,
    },
    Experiment {
        name: "byte-stream",
        worksheet: "labs/01-udp-tcp.md, P31",
        summary: "three writes: how many reads over TCP (3 spaced, 1 back to back), how many recvfroms over UDP (3)",
        run: byte_stream,
    },
    Experiment {
        name: "recv-1024",
        worksheet: "labs/01-udp-tcp.md, Part F",
        summary: "a 3000-byte message against tcp_server --once: 1024 bytes back, then a RST",
        run: recv_1024,
    },
    Experiment {
        name: "pinger-loss",
        worksheet: "labs/01-udp-tcp.md, Part G",
        summary: "udp_server --drop 0.3 --seed 7 loses the same pings every run; randint(0,10) < 4 drops 36.4%",
        run: pinger_loss,
    },
];

/// Shows how a client ended: its exit status, time, and error and hint lines.
fn show_exit(r: &mut Report, out: &Finished) {
    r.saw(format!(
        "{} after {}",
        exit_text(out.status),
        ms(out.elapsed)
    ));
    for line in out.stderr.lines() {
        r.saw(line);
    }
}

fn stderr_has(out: &Finished, text: &str) -> bool {
    out.stderr.contains(text)
}

fn tcp_client_first(r: &mut Report) -> anyhow::Result<()> {
    let port = harness::free_tcp_port()?.to_string();
    let args = ["--port", &port, "hello"];
    r.did(format!(
        "{}   (no server: nothing listens on TCP port {port})",
        shown("tcp_client", &args)
    ));
    let out = harness::run("tcp_client", &args)?;
    show_exit(r, &out);
    r.why(
        "the client's SYN reached 127.0.0.1, where no socket listens on that port, so the \
         host's TCP answered with a RST and connect() failed with ECONNREFUSED; there was no \
         connection, so no data was sent",
    );
    r.check(
        out.code() == Some(1) && out.stderr_line("error: ").is_some(),
        "exit status 1 with an error line, no crash",
    );
    r.check(
        out.stderr_line("hint: ")
            .is_some_and(|h| h.contains("answered the SYN with a RST")),
        "the hint says the SYN was answered by a RST",
    );
    r.check_linux(
        stderr_has(&out, "failed to connect TCP socket")
            && stderr_has(&out, "Connection refused (os error 111)"),
        "connect() fails at once with ECONNREFUSED, 'Connection refused (os error 111)', not with a timeout",
        "Windows says WSAECONNREFUSED (10061) for the same RST, after retrying the SYN for a second or two",
    );
    Ok(())
}

fn udp_client_first(r: &mut Report) -> anyhow::Result<()> {
    let port = harness::free_udp_port()?.to_string();
    let args = ["--port", &port, "--timeout", "500ms", "hello"];
    r.did(format!(
        "{}   (nothing holds UDP port {port}; the default 1s timeout shortened to be quick)",
        shown("udp_client", &args)
    ));
    let out = harness::run("udp_client", &args)?;
    show_exit(r, &out);
    r.why(
        "sendto() succeeded (UDP has no handshake) and the host answered with an ICMP port \
         unreachable, but Linux hands ICMP errors only to a connected UDP socket: the \
         unconnected client heard nothing and gave up at its timeout",
    );
    r.check(out.code() == Some(1), "exit status 1");
    r.check_linux(
        stderr_has(&out, "failed to receive a reply")
            && stderr_has(&out, "Resource temporarily unavailable (os error 11)")
            && out
                .stderr_line("hint: ")
                .is_some_and(|h| h.starts_with("hint: no reply at all before the timeout")),
        "recvfrom() times out with EAGAIN (os error 11), 'no reply at all'",
        "Windows delivers the ICMP port unreachable to an unconnected UDP socket too, as \
         WSAECONNRESET (10054) on recvfrom(), at once",
    );
    r.check_linux(
        out.elapsed >= Duration::from_millis(500),
        format!(
            "it fails only when the 500ms timeout expires ({})",
            ms(out.elapsed)
        ),
        "on Windows the 10054 comes at once",
    );

    let args = ["--port", &port, "--connect", "--timeout", "2s", "hello"];
    r.did(shown("udp_client", &args));
    let out = harness::run("udp_client", &args)?;
    show_exit(r, &out);
    r.why(
        "connect() on a UDP socket sends nothing but fixes the peer, so the kernel now hands \
         this socket the ICMP port unreachable that answers its datagram: recvfrom() fails \
         with ECONNREFUSED as soon as it arrives",
    );
    r.check(out.code() == Some(1), "exit status 1");
    r.check(
        out.stderr_line("hint: ")
            .is_some_and(|h| h.contains("ICMP port unreachable came back")),
        "the hint names the ICMP port unreachable",
    );
    r.check_linux(
        stderr_has(&out, "Connection refused (os error 111)"),
        "the connected socket gets ECONNREFUSED, 'Connection refused (os error 111)', as soon as the ICMP arrives, not a timeout",
        "Windows reports it as WSAECONNRESET (10054)",
    );
    Ok(())
}

fn different_ports(r: &mut Report) -> anyhow::Result<()> {
    let (tcp_server, tcp_addr) = Program::server("tcp_server", &[])?;
    let (udp_server, udp_addr) = Program::server("udp_server", &[])?;
    r.did(format!(
        "started tcp_server on {tcp_addr} and udp_server on {udp_addr} (--port 0: the OS chose the ports)"
    ));
    // The worksheet's 5000 and 4000 could be in use on some machine; any
    // port where nothing listens shows the same.
    let tcp_port = harness::free_tcp_port()?.to_string();
    let udp_port = harness::free_udp_port()?.to_string();

    let args = ["--port", &tcp_port, "hello"];
    r.did(shown("tcp_client", &args));
    let tcp = harness::run("tcp_client", &args)?;
    show_exit(r, &tcp);
    let args = ["--port", &udp_port, "--timeout", "500ms", "hello"];
    r.did(shown("udp_client", &args));
    let udp = harness::run("udp_client", &args)?;
    show_exit(r, &udp);
    let args = ["--port", &udp_port, "--connect", "hello"];
    r.did(shown("udp_client", &args));
    let udp_connected = harness::run("udp_client", &args)?;
    show_exit(r, &udp_connected);

    r.check(
        tcp.code() == Some(1) && stderr_has(&tcp, "answered the SYN with a RST"),
        "TCP to the wrong port is refused, as in P28a",
    );
    r.check_linux(
        udp.code() == Some(1) && stderr_has(&udp, "(os error 11)"),
        "unconnected UDP to the wrong port times out, as in P28b",
        "Windows reports 10054 at once",
    );
    r.check(
        udp_connected.code() == Some(1) && stderr_has(&udp_connected, "ICMP port unreachable"),
        "connected UDP to the wrong port is refused by the ICMP port unreachable",
    );

    // Then the servers' own ports, so their logs show they were listening
    // and do log a client: only those clients may appear in them.
    let tcp_right = talk_to(r, "tcp_client", tcp_addr)?;
    let udp_right = talk_to(r, "udp_client", udp_addr)?;
    tcp_server.expect_line(&format!("127.0.0.1:{tcp_right} closed: received 5 bytes"))?;
    udp_server.expect_line(&format!("127.0.0.1:{udp_right} received 5 bytes"))?;
    let logged_only = |server: &Program, port: u16| {
        let lines = server.lines_so_far();
        let events: Vec<&String> = lines.iter().skip(1).collect();
        let only = events
            .iter()
            .all(|l| l.contains(&format!("127.0.0.1:{port} ")));
        (only, events.len())
    };
    let (tcp_only, tcp_events) = logged_only(&tcp_server, tcp_right);
    let (udp_only, udp_events) = logged_only(&udp_server, udp_right);
    r.saw(format!(
        "tcp_server logged {tcp_events} lines, udp_server {udp_events}, all about the clients on their own ports"
    ));
    r.why(
        "a port number names a socket: the SYN and the datagrams went to ports where no socket \
         was, so the servers never saw them; the host answered for them (RST, ICMP)",
    );
    r.check(
        tcp_only && udp_only,
        "neither server logs anything about the clients on the wrong ports",
    );
    Ok(())
}

/// Runs `client hello` against `server` and returns the client's local port.
fn talk_to(r: &mut Report, client: &str, server: SocketAddr) -> anyhow::Result<u16> {
    let port = server.port().to_string();
    let args = ["--port", &port, "hello"];
    r.did(format!(
        "{}   (the server's own port)",
        shown(client, &args)
    ));
    let out = harness::run(client, &args)?;
    if out.code() != Some(0) {
        bail!(
            "{client} failed against its server on port {port}: {}",
            out.stderr.trim()
        );
    }
    r.saw(out.stdout.trim_end());
    local_port(&out.stdout).with_context(|| format!("{client} printed no local address"))
}

/// The ports a UDP client was given by the OS, from the range Linux uses.
fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut numbers = text.split_whitespace().map(|n| n.parse().ok());
    Some((numbers.next()??, numbers.next()??))
}

fn bound_client_port(r: &mut Report) -> anyhow::Result<()> {
    const FIXED: u16 = 5432;
    // The experiment needs port 5432 itself; say so plainly if it is taken.
    match UdpSocket::bind(("0.0.0.0", FIXED)) {
        Ok(probe) => drop(probe),
        Err(err) => bail!(
            "UDP port {FIXED} is not free on this machine ({err}), and the worksheet's \
             question needs it: `ss -ulnp | grep :{FIXED}` (Linux; `netstat -ano -p UDP | \
             findstr :{FIXED}` on Windows, `lsof -nP -i UDP:{FIXED}` on macOS) names the \
             program holding it; \
             stop that program and run this experiment again"
        ),
    }
    let (server, addr) = Program::server("udp_server", &[])?;
    r.did(format!("started udp_server on {addr}"));
    let port = addr.port().to_string();
    let plain = ["--port", &port, "hello"];
    let bound = ["--port", &port, "--bind-port", "5432", "hello"];
    let mut ports = Vec::new();
    let mut replies_from_server = true;
    for args in [&plain[..], &plain[..], &bound[..], &bound[..]] {
        r.did(shown("udp_client", args));
        let out = harness::run("udp_client", args)?;
        if out.code() != Some(0) {
            bail!("udp_client failed: {}", out.stderr.trim());
        }
        let rtt = out.stdout_line("RTT ").unwrap_or("(no RTT line)");
        r.saw(rtt);
        replies_from_server &= rtt.contains(&format!("from {addr} "));
        let local = local_port(&out.stdout).context("udp_client printed no local address")?;
        let logged = server.expect_line(&format!("127.0.0.1:{local} received 5 bytes"))?;
        r.saw(format!("udp_server: {logged}"));
        ports.push(local);
    }
    let (before, after) = ports.split_at(2);
    r.why(
        "udp_client bind()s port 0, so the OS picks a free ephemeral port (the classic \
         Python client, which never calls bind(), gets one at its first sendto()); with \
         --bind-port it bind()s 5432 instead. The server replies to whatever address \
         recvfrom() gave it, so it needs no change, and its own socket stays on its port",
    );
    match ephemeral_range() {
        Some((low, high)) => r.check(
            before.iter().all(|p| (low..=high).contains(p)),
            format!(
                "before: ports {before:?}, chosen by the OS from its ephemeral range {low}-{high} (net.ipv4.ip_local_port_range)"
            ),
        ),
        None => r.check_linux(
            false,
            "before: ports chosen from /proc/sys/net/ipv4/ip_local_port_range",
            "other systems have their own ephemeral range (IANA's 49152-65535 on Windows and macOS)",
        ),
    }
    r.check(
        after == [FIXED, FIXED],
        format!("after: port 5432 on both runs (saw {after:?})"),
    );
    r.check(
        replies_from_server,
        format!(
            "the server did not change: every reply came from its socket {addr}, before and after"
        ),
    );

    // Two sockets cannot hold one port: hold 5432 and try again.
    let holder = UdpSocket::bind(("0.0.0.0", FIXED)).context("failed to hold UDP port 5432")?;
    r.did(format!(
        "held UDP port 5432 with a socket of our own, then {}",
        shown("udp_client", &bound)
    ));
    let out = harness::run("udp_client", &bound)?;
    drop(holder);
    show_exit(r, &out);
    r.check(
        out.code() == Some(1) && stderr_has(&out, "already holds UDP port 5432"),
        "a second socket cannot bind 5432 while one holds it: bind() fails with EADDRINUSE",
    );
    Ok(())
}

fn byte_stream(r: &mut Report) -> anyhow::Result<()> {
    const WRITES: [&[u8]; 3] = [b"one ", b"two ", b"three"];
    // One client at a time, so a second connection can be made to wait,
    // unread, in the listen backlog.
    let (server, addr) = Program::server("tcp_server", &["--max-clients", "1"])?;
    r.did(format!("started tcp_server --max-clients 1 on {addr}"));

    // Spaced writes: each one sent only after the previous one's echo came
    // back, so the server had read it before the next was sent.
    let mut spaced = connect(addr)?;
    let spaced_local = spaced.local_addr()?;
    for write in WRITES {
        spaced.write_all(write).context("failed to send")?;
        let mut echo = vec![0u8; write.len()];
        spaced
            .read_exact(&mut echo)
            .context("failed to read the echo")?;
    }
    spaced.shutdown(Shutdown::Write)?;
    let mut rest = Vec::new();
    spaced.read_to_end(&mut rest)?;
    r.did("TCP: wrote 'one ', 'two ', 'three' on one connection, each after the previous one's echo had come back");
    let spaced_log = server.expect_line(&format!("{spaced_local} closed:"))?;
    r.saw(format!("tcp_server: {spaced_log}"));

    // Back to back: the three writes and the FIN all reach the kernel
    // before the server reads, because another connection holds its only slot.
    let holder = connect(addr)?;
    server.expect_line(&format!("{} connected", holder.local_addr()?))?;
    let mut quick = connect(addr)?;
    let quick_local = quick.local_addr()?;
    for write in WRITES {
        quick.write_all(write).context("failed to send")?;
    }
    quick.shutdown(Shutdown::Write)?;
    drop(holder);
    let mut echo = Vec::new();
    quick.read_to_end(&mut echo)?;
    r.did("TCP: wrote 'one ', 'two ', 'three' back to back on a new connection (waiting unread in the backlog behind a client holding the server's only slot), then FIN");
    let quick_log = server.expect_line(&format!("{quick_local} closed:"))?;
    r.saw(format!("tcp_server: {quick_log}"));
    r.saw(format!(
        "the echo: {}",
        socketlab::printable::quoted(&echo, 40)
    ));
    r.why(
        "TCP delivers the same bytes in the same order, but not the writes: a read() returns \
         whatever has arrived, one write's bytes when they came one at a time, all three \
         when all had arrived before the server read",
    );
    r.check(
        spaced_log.ends_with("received 13 bytes in 3 reads, sent 13"),
        "spaced writes: 13 bytes in 3 reads",
    );
    r.check(
        quick_log.ends_with("received 13 bytes in 1 read, sent 13") && echo == b"ONE TWO THREE",
        "back to back: 13 bytes in 1 read, the same bytes in the same order",
    );

    // UDP: three datagrams from one socket, three recvfroms.
    let (udp_server, udp_addr) = Program::server("udp_server", &[])?;
    let socket = UdpSocket::bind("127.0.0.1:0").context("failed to bind a UDP socket")?;
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    for write in WRITES {
        socket.send_to(write, udp_addr).context("failed to send")?;
    }
    r.did(format!(
        "UDP: sent 'one ', 'two ', 'three' as three datagrams from one socket to udp_server on {udp_addr}, then recvfrom() three times with a 100-byte buffer"
    ));
    udp_server.expect_line("received 5 bytes \"three\"")?;
    let mut replies = Vec::new();
    for _ in WRITES {
        let mut buf = [0u8; 100];
        let (len, _) = socket
            .recv_from(&mut buf)
            .context("a reply datagram did not arrive")?;
        replies.push(buf[..len].to_vec());
    }
    for line in udp_server.lines_so_far().iter().skip(1) {
        r.saw(format!("udp_server: {line}"));
    }
    let shown_replies: Vec<String> = replies
        .iter()
        .map(|d| socketlab::printable::quoted(d, 20))
        .collect();
    r.saw(format!("recvfrom() returned {}", shown_replies.join(", ")));
    r.why(
        "UDP keeps message boundaries: each recvfrom() returns exactly one datagram, whole, \
         even with room for more in the buffer",
    );
    let mut sorted = replies.clone();
    sorted.sort();
    r.check(
        sorted == [b"ONE ".to_vec(), b"THREE".to_vec(), b"TWO ".to_vec()],
        "UDP: 3 datagrams, 3 recvfroms, each reply one whole datagram",
    );
    r.why(
        "a byte stream lets an application send any amount in any pieces, and TCP packs them \
         efficiently; but the application must mark its own message boundaries (a length, \
         a delimiter, or the FIN) and every reader must loop until a message is whole",
    );
    Ok(())
}

fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, WAIT)
        .with_context(|| format!("failed to connect to {addr}"))?;
    stream.set_read_timeout(Some(WAIT))?;
    // Each write leaves at once as its own segment (no Nagle merging in the
    // sender): what the reader sees is the receiving kernel's doing.
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn recv_1024(r: &mut Report) -> anyhow::Result<()> {
    let message = "a".repeat(3000);
    let (once, once_addr) = Program::server("tcp_server", &["--once"])?;
    r.did(format!("started tcp_server --once on {once_addr}"));
    let port = once_addr.port().to_string();
    let args = ["--port", &port, &message];
    r.did(format!("{} (3000 a's)", shown("tcp_client", &args)));
    let out = harness::run("tcp_client", &args)?;
    let reply = out
        .stdout_line("From Server: ")
        .map(|l| &l["From Server: ".len()..])
        .unwrap_or("");
    r.saw(format!(
        "From Server: {} bytes, {}",
        reply.len(),
        if reply.bytes().all(|b| b == b'A') {
            "all A"
        } else {
            "not all A"
        }
    ));
    for line in out.stdout.lines().filter(|l| !l.starts_with("From Server")) {
        r.saw(line);
    }
    for line in out.stderr.lines() {
        r.saw(line);
    }
    let logged = once.expect_line("closed after one read")?;
    r.saw(format!("tcp_server: {logged}"));
    r.why(
        "one recv(1024) returns at most 1024 bytes and the classic server never reads again; \
         closing a socket with unread data makes the kernel send a RST instead of a FIN \
         (RFC 1122 4.2.2.13), which is how the client learns the rest was thrown away",
    );
    r.check(
        out.code() == Some(0) && reply.len() == 1024 && reply.bytes().all(|b| b == b'A'),
        "1024 bytes come back, uppercased, of the 3000 sent",
    );
    r.check(
        out.stdout
            .contains("note: the server ended the connection with a RST"),
        "the connection ends with a RST, not a FIN",
    );
    r.check(
        logged.contains(
            "received 1024 bytes (--buffer 1024), sent 1024; more bytes were waiting unread",
        ),
        "the server read 1024 bytes and left the rest unread",
    );

    let (stream, stream_addr) = Program::server("tcp_server", &[])?;
    let port = stream_addr.port().to_string();
    let args = ["--port", &port, &message];
    r.did(format!(
        "started tcp_server (streaming) on {stream_addr}; {} (3000 a's)",
        shown("tcp_client", &args)
    ));
    let out = harness::run("tcp_client", &args)?;
    let reply_len = out
        .stdout_line("From Server: ")
        .map_or(0, |l| l.len() - "From Server: ".len());
    let logged = stream.expect_line("closed: received")?;
    r.saw(format!("From Server: {reply_len} bytes"));
    r.saw(format!("tcp_server: {logged}"));
    r.why("the streaming server reads until the client's FIN, 1024 bytes at a time");
    r.check(
        reply_len == 3000 && logged.ends_with("received 3000 bytes in 3 reads, sent 3000"),
        "without --once all 3000 bytes come back, read in 3 reads",
    );
    Ok(())
}

/// The pings `udp_server --drop 0.3 --seed SEED` drops among the first
/// `count`: its generator draws once per datagram, in order.
fn predicted_losses(seed: u64, count: u32) -> Vec<u32> {
    let mut rng = Rng::seeded(seed);
    (1..=count).filter(|_| rng.chance(0.3)).collect()
}

/// What one pinger run showed.
struct PingRun {
    timed_out: Vec<u32>,
    dropped: Vec<u32>,
    summary: String,
}

/// Starts a fresh `udp_server --drop 0.3 --seed SEED` and pings it ten times.
fn ping_run(seed: u64) -> anyhow::Result<PingRun> {
    let seed_text = seed.to_string();
    let (server, addr) = Program::server("udp_server", &["--drop", "0.3", "--seed", &seed_text])?;
    let port = addr.port().to_string();
    let args = ["--port", &port, "--count", "10", "--interval", "20ms"];
    let out = harness::run("udp_client", &args)?;
    if out.code() != Some(0) {
        bail!("udp_client --count failed: {}", out.stderr.trim());
    }
    let timed_out = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Request timed out: seq="))
        .filter_map(|n| n.parse().ok())
        .collect();
    let summary = out
        .stdout
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("(no summary)")
        .to_string();
    // The server logs each drop with the ping's text, `Ping <seq> <time>`.
    let dropped = server
        .lines_so_far()
        .iter()
        .filter(|l| l.contains(" dropped "))
        .filter_map(|l| l.split("\"Ping ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    Ok(PingRun {
        timed_out,
        dropped,
        summary,
    })
}

fn pinger_loss(r: &mut Report) -> anyhow::Result<()> {
    r.did(
        "three times a fresh udp_server --drop 0.3 (seed 7, seed 7, seed 8), each pinged by \
         udp_client --count 10 --interval 20ms (the three runs side by side; the interval does not change what is lost)",
    );
    let runs = thread::scope(|scope| {
        let runs: Vec<_> = [7, 7, 8]
            .map(|seed| scope.spawn(move || ping_run(seed)))
            .into_iter()
            .collect();
        runs.into_iter()
            .map(|run| {
                run.join()
                    .unwrap_or_else(|_| bail!("a pinger run panicked"))
            })
            .collect::<anyhow::Result<Vec<PingRun>>>()
    })?;
    for (run, seed) in runs.iter().zip([7, 7, 8]) {
        r.saw(format!(
            "seed {seed}: timed out {:?}, server dropped {:?}; {}",
            run.timed_out, run.dropped, run.summary
        ));
    }
    let (first, second, other) = (&runs[0], &runs[1], &runs[2]);
    let (seven, eight) = (predicted_losses(7, 10), predicted_losses(8, 10));
    r.why(format!(
        "the server's generator (SplitMix64, socketlab::random) starts from the seed and draws \
         once per datagram, so a fresh server drops the same pings every run: computed for \
         seed 7 {seven:?}, for seed 8 {eight:?}"
    ));
    r.check(
        runs.iter().all(|run| run.timed_out == run.dropped),
        "every ping that timed out is one the server dropped, and no other",
    );
    r.check(
        first.timed_out == second.timed_out && first.timed_out == seven,
        format!(
            "seed 7 loses the same pings on every run, {:?}",
            first.timed_out
        ),
    );
    r.check(
        first.timed_out == [2, 6, 9] && first.summary.contains("30% packet loss"),
        "seed 7 loses pings 2, 6 and 9, 30% packet loss, as the worksheet shows",
    );
    r.check(
        other.timed_out == eight && other.timed_out != first.timed_out,
        format!("seed 8 loses other pings, {:?}", other.timed_out),
    );

    // The K&R pinger server: rand = random.randint(0, 10); drop if rand < 4.
    let outcomes: Vec<u64> = (0..=10).collect();
    let dropping = outcomes.iter().filter(|&&n| n < 4).count();
    let fraction = dropping as f64 / outcomes.len() as f64;
    let mut rng = Rng::seeded(2026);
    let draws = 1_000_000;
    let simulated = (0..draws).filter(|_| rng.in_range(0, 10) < 4).count() as f64 / draws as f64;
    r.did("counted the outcomes of randint(0, 10) below 4, and drew it a million times");
    r.saw(format!(
        "randint(0, 10) has {} outcomes, {dropping} of them below 4: {dropping}/{} = {:.1}%; a million draws dropped {:.4}",
        outcomes.len(),
        outcomes.len(),
        fraction * 100.0,
        simulated
    ));
    r.why("randint includes both ends, so 0 to 10 is 11 numbers, not 10");
    r.check(
        dropping == 4
            && outcomes.len() == 11
            && (fraction - 0.3).abs() > 0.05
            && (simulated - fraction).abs() < 0.003,
        format!(
            "randint(0, 10) < 4 drops 4/11 = {:.1}%, not 30%",
            fraction * 100.0
        ),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_7_is_the_worksheets_loss() {
        assert_eq!(predicted_losses(7, 10), [2, 6, 9]);
        assert_ne!(predicted_losses(8, 10), [2, 6, 9]);
    }
}
