//! time_client: asks time_server for the time, the date or the temperature,
//! and measures each round-trip time.
//!
//! The seed 001 client. It opens one TCP connection, agrees on a Caesar key
//! with the server by Diffie-Hellman (p = 257, g = 11; labs/time-protocol.md),
//! then shows the seed's menu. Each request is timed from just before
//! `send()` to just after the whole answer has arrived: the round-trip time
//! (RTT), which on one machine is mostly the two programs' own work, and
//! across a network adds the time on the wire both ways.
//!
//! If the server does not answer the key exchange within a second, every
//! one of its workers is busy: this connection waits in the server's listen
//! backlog until a client leaves, and the client says so. A session left
//! at the menu longer than the server's `--idle-timeout` (2 minutes) is
//! closed by the server, to free its worker; the next choice says so.
//!
//! Terminal 1: `cargo run --bin time_server`
//! Terminal 2: `cargo run --bin time_client` (or `-- --request time --count 5`)
//! Worksheet:  labs/05-time-service.md

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use socketlab::cli::ClientArgs;
use socketlab::connect;
use socketlab::explain::{self, Proto, Step, is_timeout};
use socketlab::random::Rng;
use socketlab::rtt::{self, Stats};
use socketlab::time_service::{
    FrameError, G, Hello, KeyPair, P, Request, caesar_key, read_frame, read_line, write_frame,
};

/// Ask a time_server for the time, date or temperature, with the seed's menu and RTTs.
#[derive(Parser, Debug)]
#[command(
    name = "time_client",
    version,
    mut_arg("port", |a| a.default_value("7777")),
    mut_arg("timeout", |a| a.default_value("5s").help(TIMEOUT_HELP))
)]
struct Cli {
    #[command(flatten)]
    client: ClientArgs,

    /// Ask this once (or --count times) and exit, instead of showing the menu
    #[arg(long, value_enum)]
    request: Option<Ask>,

    /// With --request: how many times to ask; then print RTT statistics
    #[arg(long, default_value_t = 1, requires = "request", value_parser = clap::value_parser!(u32).range(1..))]
    count: u32,

    /// No key exchange and no Caesar shift (the server must run --plain too)
    #[arg(long)]
    plain: bool,

    /// Show the Diffie-Hellman numbers and the Caesar key
    #[arg(long)]
    verbose: bool,
}

/// `--timeout` means more here than in the other clients.
const TIMEOUT_HELP: &str = "How long to wait to connect, and for each answer (e.g. 500ms, 2s); \
     waiting for a free worker has no limit";

/// What `--request` asks for.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Ask {
    Time,
    Date,
    Temp,
}

impl From<Ask> for Request {
    fn from(ask: Ask) -> Request {
        match ask {
            Ask::Time => Request::Time,
            Ask::Date => Request::Date,
            Ask::Temp => Request::Temp,
        }
    }
}

/// How long the key exchange may go unanswered before the client says it
/// is waiting for a free worker.
const BUSY_AFTER: Duration = Duration::from_secs(1);

/// A session with the server: the connection and the agreed key.
struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    server: SocketAddr,
    key: u8,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    // connect() to the first of the server's addresses that answers
    // (`localhost` may be 127.0.0.1 and ::1).
    let stream = connect::tcp(&cli.client.resolve()?, cli.client.timeout)?;
    let session = handshake(stream, cli)?;
    match cli.request {
        Some(ask) => ask_repeatedly(session, ask.into(), cli),
        None => menu(session),
    }
}

/// The client's side of the key exchange (labs/time-protocol.md).
fn handshake(stream: TcpStream, cli: &Cli) -> anyhow::Result<Session> {
    let server = stream
        .peer_addr()
        .context("failed to read the peer address")?;
    let writer = stream
        .try_clone()
        .context("failed to duplicate the socket")?;
    let mut session = Session {
        reader: BufReader::new(stream),
        writer,
        server,
        key: 0,
    };
    if cli.plain {
        send_hello(&mut session, Hello::Plain)?;
        if let Hello::Key(_) = server_line(&mut session.reader, server, cli.client.timeout)? {
            return Err(explain::hinted(
                "the server answered PLAIN with a public key: it encrypts",
                MODE_HINT,
            ));
        }
        return Ok(session);
    }
    let mut rng = Rng::from_entropy();
    // Key 0 would shift nothing; the server sees the same and waits for a new key.
    while session.key == 0 {
        session.key = exchange_keys(&mut session, &mut rng, cli)?;
        if session.key == 0 && cli.verbose {
            println!("DH: key 0 would send plain text: exchanging again with a new private key");
        }
    }
    Ok(session)
}

/// One Diffie-Hellman exchange: our public key out, the server's in;
/// returns the Caesar key (which may be 0).
fn exchange_keys(session: &mut Session, rng: &mut Rng, cli: &Cli) -> anyhow::Result<u8> {
    let pair = KeyPair::generate(rng);
    send_hello(session, Hello::Key(pair.public))?;
    let Hello::Key(server_public) =
        server_line(&mut session.reader, session.server, cli.client.timeout)?
    else {
        return Err(explain::hinted(
            "the server answered our public key with PLAIN: it runs --plain",
            MODE_HINT,
        ));
    };
    let secret = pair.shared_secret(server_public);
    let key = caesar_key(secret);
    if cli.verbose {
        println!(
            "DH: p = {P}, g = {G}; my private key a = {a}, my public key A = g^a mod p = {A}",
            a = pair.private,
            A = pair.public
        );
        println!(
            "DH: server's public key B = {server_public}; secret s = B^a mod p = {secret}; Caesar key k = s mod 256 = {key}"
        );
    }
    Ok(key)
}

/// Sends one handshake line.
fn send_hello(session: &mut Session, hello: Hello) -> anyhow::Result<()> {
    session
        .writer
        .write_all(format!("{hello}\n").as_bytes())
        .context(Step::Send(Proto::Tcp, session.server))
}

/// Waits for the server's handshake line; an `ERROR` line becomes the error.
fn server_line(
    reader: &mut BufReader<TcpStream>,
    server: SocketAddr,
    timeout: Duration,
) -> anyhow::Result<Hello> {
    let step = || Step::Receive(Proto::Tcp, server);
    // fill_buf() waits for data without consuming it, so nothing is lost
    // when the first, short wait times out.
    reader
        .get_ref()
        .set_read_timeout(Some(BUSY_AFTER))
        .with_context(step)?;
    match reader.fill_buf() {
        Ok(_) => {}
        Err(err) if is_timeout(&err) => {
            println!(
                "waiting for a free worker: the server has not answered the key exchange within {}, \
                 so all its workers are busy and this connection waits in its listen backlog (Ctrl-C gives up)",
                humantime::format_duration(BUSY_AFTER)
            );
            // No limit now: a worker frees up when a client leaves, which
            // may take minutes (a person at a menu).
            reader.get_ref().set_read_timeout(None).with_context(step)?;
            reader.fill_buf().with_context(step)?;
        }
        Err(err) => return Err(err).with_context(step),
    }
    reader
        .get_ref()
        .set_read_timeout(Some(timeout))
        .with_context(step)?;
    let Some(line) = read_line(reader).with_context(step)? else {
        return Err(explain::hinted(
            "the server closed the connection during the key exchange",
            NOT_A_TIME_SERVER_HINT,
        ));
    };
    if let Some(why) = line.strip_prefix("ERROR ") {
        return Err(explain::hinted(
            format!("the server refused the handshake: {}", why.trim_end()),
            MODE_HINT,
        ));
    }
    Hello::parse(&line).map_err(|why| {
        explain::hinted(
            format!("the server's handshake line makes no sense: {why}"),
            NOT_A_TIME_SERVER_HINT,
        )
    })
}

/// For a handshake that ends in PLAIN meeting KEY.
const MODE_HINT: &str = "time_server and time_client must both run with --plain or both without \
     (labs/time-protocol.md, handshake errors); the server's log names this connection too";

/// For a peer that does not follow the handshake at all.
const NOT_A_TIME_SERVER_HINT: &str = "a time_server answers a KEY line with 'KEY <number>': \
     is another service listening on that port? `ss -tlnp` names the program";

/// For a session the server ended between or during frames.
const SESSION_ENDED_HINT: &str = "the server ended the session (it stopped, or refused a frame): \
     its log says why; start time_client again";

/// For a session the server closed while it waited for a request.
const IDLE_HINT: &str = "time_server closes a session that sends no request for its \
     --idle-timeout (2m by default), so that the worker can serve another client; the \
     server's log says why it closed this one: start time_client again";

/// The seed's menu, until 4 or the end of input.
fn menu(mut session: Session) -> anyhow::Result<()> {
    let local = session
        .writer
        .local_addr()
        .context("failed to read the local address")?;
    println!(
        "Connected to the server at {} from {local}.",
        session.server
    );
    let mut stdin = std::io::stdin().lock();
    loop {
        println!("Select one of the option below:");
        println!("1. Request time from the server.");
        println!("2. Request date from the server.");
        println!("3. Request temperature from the server.");
        println!("4. Exit");
        // Bytes, not read_line(): input that is not UTF-8 is a wrong choice,
        // not an error that ends the session.
        let mut choice = Vec::new();
        if stdin
            .read_until(b'\n', &mut choice)
            .context("failed to read stdin")?
            == 0
        {
            break;
        }
        let request = match String::from_utf8_lossy(&choice).trim() {
            "1" => Request::Time,
            "2" => Request::Date,
            "3" => Request::Temp,
            "4" => break,
            other => {
                println!("'{other}' is not on the menu: type 1, 2, 3 or 4.");
                continue;
            }
        };
        let (answer, rtt) = ask(&mut session, request)?;
        println!("Response: {answer} with RTT {}", rtt::ms(rtt));
    }
    // Dropping the socket closes it: the server sees our FIN.
    println!("Connection closed");
    Ok(())
}

/// `--request`: asks `--count` times, then prints ping-style statistics.
fn ask_repeatedly(mut session: Session, request: Request, cli: &Cli) -> anyhow::Result<()> {
    let mut stats = Stats::default();
    let started = Instant::now();
    for _ in 0..cli.count {
        stats.sent();
        let (answer, rtt) = ask(&mut session, request)?;
        stats.received(rtt);
        println!("Response: {answer} with RTT {}", rtt::ms(rtt));
    }
    if cli.count > 1 {
        println!();
        println!(
            "{}",
            stats.ping_summary(&session.server.to_string(), started.elapsed())
        );
    }
    Ok(())
}

/// Sends one request frame and waits for the answer frame; returns the
/// answer and the round-trip time.
fn ask(session: &mut Session, request: Request) -> anyhow::Result<(String, Duration)> {
    still_open(session)?;
    let peer = session.server;
    let started = Instant::now();
    write_frame(
        &mut session.writer,
        session.key,
        request.as_str().as_bytes(),
    )
    .context(Step::Send(Proto::Tcp, peer))?;
    let answer = match read_frame(&mut session.reader, session.key) {
        Ok(Some(answer)) => answer,
        Ok(None) => {
            return Err(explain::hinted(
                format!(
                    "the server closed the connection before answering {}",
                    request.as_str()
                ),
                SESSION_ENDED_HINT,
            ));
        }
        Err(FrameError::Io(err)) => {
            return Err(err).context(Step::Receive(Proto::Tcp, peer));
        }
        Err(err) => {
            return Err(explain::hinted(
                format!("bad answer to {}: {err}", request.as_str()),
                SESSION_ENDED_HINT,
            ));
        }
    };
    let rtt = started.elapsed();
    Ok((String::from_utf8_lossy(&answer).into_owned(), rtt))
}

/// Before a request: has the server spoken first, or closed? time_server
/// ends a session that sent no request for its `--idle-timeout` with an
/// ERROR frame and a FIN; a person back at the menu is told that here,
/// rather than getting it as the answer to the request they chose.
fn still_open(session: &mut Session) -> anyhow::Result<()> {
    let peer = session.server;
    let step = || Step::Receive(Proto::Tcp, peer);
    // A look without waiting (O_NONBLOCK): EWOULDBLOCK means nothing has
    // arrived, which is how an open session looks between requests.
    let socket = session.reader.get_ref();
    socket.set_nonblocking(true).with_context(step)?;
    let arrived = session.reader.fill_buf().map(|bytes| !bytes.is_empty());
    session
        .reader
        .get_ref()
        .set_nonblocking(false)
        .with_context(step)?;
    let why = match arrived {
        Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(()),
        Err(err) => return Err(err).with_context(step),
        // read() returned 0: the server's FIN.
        Ok(false) => "it closed the connection".to_string(),
        Ok(true) => match read_frame(&mut session.reader, session.key) {
            Ok(Some(said)) => String::from_utf8_lossy(&said).into_owned(),
            _ => "it sent something nobody asked for and closed".to_string(),
        },
    };
    Err(explain::hinted(
        format!("the server ended the session: {why}"),
        IDLE_HINT,
    ))
}
