//! time-server and time-client: the seed 001 protocol of
//! labs/time-protocol.md. A handshake line each way (`KEY <public key>`,
//! Diffie-Hellman with p = 257, g = 11), then length-prefixed frames whose
//! payload is Caesar-shifted by the agreed key.
//!
//! For time-server check is the client; for time-client it is the server,
//! answering TIME, DATE and TEMP with values no clock gives, so that the
//! client's output can only contain them if it decoded the frame.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use socketlab::time_service::{KeyPair, P, caesar_key, decrypt, encode_frame, power_mod};

use crate::Ctx;
use crate::http::Conn;
use crate::report::{Failure, Outcome, Test};
use crate::spawn;
use crate::wire::{self, End};

pub fn server_tests() -> Vec<Test> {
    vec![
        Test::new("handshake: KEY <A> gets KEY <B>", 1, s_handshake),
        Test::new("TIME answers HH:MM:SS.mmm", 1, s_time),
        Test::new("DATE answers YYYY-MM-DD", 1, s_date),
        Test::new("TEMP answers a temperature", 1, s_temp),
        Test::new("three requests on one connection", 1, s_three),
        Test::new(
            "a request frame in one-byte writes with pauses",
            2,
            s_trickle,
        ),
        Test::new(
            "two request frames in one segment get two answers",
            2,
            s_two,
        ),
        Test::new(
            "an unknown request gets ERROR and the connection stays open",
            1,
            s_unknown,
        ),
        Test::new("a bad handshake line gets an ERROR line", 1, s_bad_hello),
        Test::new(
            "a second client is served while the first holds its connection",
            2,
            s_concurrent,
        ),
        Test::new(
            "a client resets mid-frame; the server still serves the next",
            1,
            s_reset,
        ),
    ]
}

pub fn client_tests() -> Vec<Test> {
    vec![
        Test::new("the client sends KEY <A> with A from 1 to 256", 1, c_hello),
        Test::new("the request is one frame, shifted by the key", 2, c_request),
        Test::new("the client prints the answer it decoded", 2, c_answer),
        Test::new(
            "an answer frame in one-byte writes with pauses",
            2,
            c_trickle,
        ),
        Test::new("key 0: the client exchanges keys again", 1, c_key_zero),
        Test::new(
            "the client closes the connection when it is done",
            1,
            c_closes,
        ),
    ]
}

// ----- check as the client (time-server) -----

struct Session {
    conn: Conn,
    key: u8,
}

fn session(ctx: &Ctx, salt: &str) -> Result<Session, Failure> {
    let stream = wire::connect(ctx.addr(), ctx.timeout)?;
    let mut conn = Conn::new(stream, Instant::now() + ctx.timeout);
    let mut rng = ctx.rng(salt);
    for _ in 0..8 {
        let mine = KeyPair::generate(&mut rng);
        let _ = conn
            .stream
            .write_all(format!("KEY {}\n", mine.public).as_bytes());
        let line = conn.line().map_err(|end| no_line(&end))?;
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let theirs = text
            .strip_prefix("KEY ")
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| (1..=256).contains(n));
        let Some(theirs) = theirs else {
            return Err(Failure::bytes(
                b"KEY <B>\n",
                &line,
                format!("the server answered KEY {} with {text:?}", mine.public),
                "the server's handshake line is KEY, a space, its public key g^b mod p as decimal (1 to 256), and \\n",
            ));
        };
        let key = caesar_key(mine.shared_secret(theirs));
        if key != 0 {
            return Ok(Session { conn, key });
        }
    }
    Err(Failure::new(
        "eight key exchanges in a row gave key 0",
        "the server's public keys look wrong",
    ))
}

fn no_line(end: &End) -> Failure {
    Failure::new(
        format!("no handshake line came back: {}", end.describe()),
        "after the client's KEY line the server answers with its own KEY line ending in \\n",
    )
}

impl Session {
    fn send(&mut self, payload: &[u8]) {
        let _ = self.conn.stream.write_all(&encode_frame(self.key, payload));
    }

    fn answer(&mut self) -> Result<String, Failure> {
        let header = self.conn.take(2).map_err(|(_, end)| Failure::new(
            format!("no answer frame: {}", end.describe()),
            "each request frame gets one answer frame: 2 length bytes (big-endian), then the shifted payload"))?;
        let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
        let payload = self.conn.take(len).map_err(|(got, end)| {
            Failure::new(
                format!(
                    "the answer frame announced {len} bytes; {} came, then {}",
                    got.len(),
                    end.describe()
                ),
                "send the whole payload the length announces",
            )
        })?;
        Ok(String::from_utf8_lossy(&decrypt(self.key, &payload)).into_owned())
    }

    fn ask(&mut self, request: &str) -> Result<String, Failure> {
        self.send(request.as_bytes());
        self.answer()
    }
}

fn shaped(what: &str, answer: &str, pattern: &str) -> Outcome {
    let fits = answer.len() == pattern.len()
        && answer.bytes().zip(pattern.bytes()).all(|(a, p)| {
            if p == b'9' {
                a.is_ascii_digit()
            } else {
                a == p
            }
        });
    if fits {
        return Ok(());
    }
    Err(Failure::bytes(
        pattern.as_bytes(),
        answer.as_bytes(),
        format!("the {what} answer is not shaped {pattern}"),
        "labs/time-protocol.md: TIME answers HH:MM:SS.mmm (UTC), DATE answers YYYY-MM-DD; a garbled answer often means the shift was applied with the wrong key or twice",
    ))
}

fn s_handshake(ctx: &Ctx) -> Outcome {
    session(ctx, "handshake").map(drop)
}

fn s_time(ctx: &Ctx) -> Outcome {
    shaped("TIME", &session(ctx, "time")?.ask("TIME")?, "99:99:99.999")
}

fn s_date(ctx: &Ctx) -> Outcome {
    shaped("DATE", &session(ctx, "date")?.ask("DATE")?, "9999-99-99")
}

fn s_temp(ctx: &Ctx) -> Outcome {
    let answer = session(ctx, "temp")?.ask("TEMP")?;
    let number = answer.split_whitespace().next().unwrap_or("");
    if number.parse::<f64>().is_ok() && answer.contains('C') {
        return Ok(());
    }
    Err(Failure::bytes(
        b"21.5 \xc2\xb0C (simulated)",
        answer.as_bytes(),
        "the TEMP answer is not a temperature",
        "TEMP answers a number with one decimal, then \u{b0}C and where it came from",
    ))
}

fn s_three(ctx: &Ctx) -> Outcome {
    let mut s = session(ctx, "three")?;
    shaped("TIME", &s.ask("TIME")?, "99:99:99.999")?;
    shaped("DATE", &s.ask("DATE")?, "9999-99-99")?;
    shaped("TIME", &s.ask("TIME")?, "99:99:99.999")
        .map_err(|f| f.also("one connection carries any number of requests, one after another"))
}

fn s_trickle(ctx: &Ctx) -> Outcome {
    let mut s = session(ctx, "trickle")?;
    let frame = encode_frame(s.key, b"DATE");
    let _ = wire::write_in_pieces(&mut s.conn.stream, &frame, 1, Duration::from_millis(20));
    shaped("DATE", &s.answer()?, "9999-99-99").map_err(|f| f.also("the frame arrived one byte at a time: read the 2-byte header, then loop until `length` bytes are in"))
}

fn s_two(ctx: &Ctx) -> Outcome {
    let mut s = session(ctx, "two")?;
    let mut both = encode_frame(s.key, b"TIME");
    both.extend(encode_frame(s.key, b"DATE"));
    let _ = s.conn.stream.write_all(&both);
    shaped("TIME", &s.answer()?, "99:99:99.999")?;
    shaped("DATE", &s.answer()?, "9999-99-99").map_err(|f| f.also("two frames came in one segment: a reader must never read past the frame it is reading (or must keep the extra bytes for the next)"))
}

fn s_unknown(ctx: &Ctx) -> Outcome {
    let mut s = session(ctx, "unknown")?;
    let answer = s.ask("HELLO")?;
    if !answer.starts_with("ERROR ") {
        return Err(Failure::bytes(
            b"ERROR unknown request",
            answer.as_bytes(),
            "an unknown request did not get an ERROR answer",
            "any request other than TIME, DATE and TEMP gets an answer that starts with 'ERROR '",
        ));
    }
    shaped("TIME", &s.ask("TIME")?, "99:99:99.999")
        .map_err(|f| f.also("after an unknown request the connection stays open"))
}

fn s_bad_hello(ctx: &Ctx) -> Outcome {
    let mut stream = wire::connect(ctx.addr(), ctx.timeout)?;
    let _ = stream.write_all(b"HELLO\n");
    let (got, end) = wire::read_until_end(&mut stream, Instant::now() + ctx.timeout, 4096);
    if got.starts_with(b"ERROR ") {
        return Ok(());
    }
    Err(Failure::bytes(
        b"ERROR expected 'KEY <public key>' or 'PLAIN', got \"HELLO\"\n",
        &got,
        format!(
            "no ERROR line for the handshake line HELLO; {}",
            end.describe()
        ),
        "a handshake line that is neither KEY <n> nor PLAIN gets one line starting with 'ERROR ', then the server closes",
    ))
}

fn s_concurrent(ctx: &Ctx) -> Outcome {
    let _first = session(ctx, "holder")?;
    let second = session(ctx, "second").and_then(|mut s| s.ask("TIME"));
    second.and_then(|a| shaped("TIME", &a, "99:99:99.999")).map_err(|f| Failure {
        hint: "while one client held its connection (idle after its handshake), a second got no answer in time: the server serves one client at a time. Serve each connection on a thread (or a pool with more than one worker)".into(),
        ..f
    })
}

fn s_reset(ctx: &Ctx) -> Outcome {
    let mut rude = session(ctx, "rude")?;
    let frame = encode_frame(rude.key, b"TIME");
    let _ = rude.conn.stream.write_all(&frame[..3]);
    wire::reset(rude.conn.stream);
    let answer = session(ctx, "after")?.ask("TIME")?;
    shaped("TIME", &answer, "99:99:99.999")
}

// ----- check as the server (time-client) -----

/// How check's server behaves in one run of the client.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Play {
    Normal,
    Trickle,
    KeyZero,
}

/// What one run of the client did.
struct Run {
    hellos: Vec<String>,
    request: Option<Vec<u8>>,
    answered: Vec<&'static str>,
    closed: bool,
    stdout: String,
}

fn answer_for(request: &[u8]) -> Option<&'static str> {
    match request {
        b"TIME" => Some("13:37:42.123"),
        b"DATE" => Some("2031-07-04"),
        b"TEMP" => Some("21.5 \u{b0}C (check)"),
        _ => None,
    }
}

fn run_client(ctx: &Ctx, play: Play) -> Result<Run, Failure> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Failure::new(format!("cannot listen: {e}"), "check itself failed"))?;
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(|e| Failure::new(e.to_string(), "check itself failed"))?;
    let command = spawn::fill(
        ctx.exec.as_deref().unwrap_or(""),
        &[
            ("host", "127.0.0.1".into()),
            ("port", addr.port().to_string()),
        ],
    );
    let mut child = spawn::start(&command, &ctx.input)
        .map_err(|e| Failure::new(format!("{e:#}"), "the --exec command could not be started"))?;
    let _ = listener.set_nonblocking(true);
    let end = Instant::now() + ctx.timeout;
    let stream = loop {
        if let Ok((s, _)) = listener.accept() {
            break s;
        }
        if Instant::now() >= end || child.exited().is_some() {
            child.wait_for(Duration::from_millis(100));
            return Err(Failure::new(
                format!(
                    "the client never connected to {addr}; {}",
                    child.fate().unwrap_or("it was still running".into())
                ),
                "check replaced {host} and {port} in the command with its own server's address: does the client take them from the command line?",
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = stream.set_nonblocking(false);
    let mut conn = Conn::new(stream, end);
    let mut run = Run {
        hellos: Vec::new(),
        request: None,
        answered: Vec::new(),
        closed: false,
        stdout: String::new(),
    };
    serve_once(&mut conn, &mut run, play, ctx);
    // Whatever ended the session, close it, so the client is not left waiting.
    let _ = conn.stream.shutdown(std::net::Shutdown::Both);
    let left = end
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(200));
    child.wait_for(left);
    run.stdout = String::from_utf8_lossy(&child.stdout()).into_owned();
    Ok(run)
}

/// check's side of one session: the handshake, then an answer to each
/// request frame until the client closes (or the deadline passes).
fn serve_once(conn: &mut Conn, run: &mut Run, play: Play, ctx: &Ctx) {
    let Some(key) = handshake_as_server(conn, run, play, ctx) else {
        return;
    };
    loop {
        let header = match conn.take(2) {
            Ok(header) => header,
            // The client closed between frames: the normal end of a session.
            Err((got, End::Closed)) if got.is_empty() => return run.closed = true,
            Err(_) => return,
        };
        let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
        let Ok(payload) = conn.take(len.min(1024)) else {
            return;
        };
        let request = decrypt(key, &payload);
        run.request.get_or_insert_with(|| request.clone());
        let Some(answer) = answer_for(&request) else {
            return;
        };
        run.answered.push(answer);
        let frame = encode_frame(key, answer.as_bytes());
        let (piece, pause) = match play {
            Play::Trickle => (1, Duration::from_millis(20)),
            _ => (frame.len(), Duration::ZERO),
        };
        let _ = wire::write_in_pieces(&mut conn.stream, &frame, piece, pause);
    }
}

/// check's side of the key exchange; the agreed key, or None if the
/// client's line was not `KEY <n>`. With [`Play::KeyZero`] the first
/// exchange is made to give key 0, so the client must exchange again.
fn handshake_as_server(conn: &mut Conn, run: &mut Run, play: Play, ctx: &Ctx) -> Option<u8> {
    let mut rng = ctx.rng("server");
    let mut zero_sent = false;
    loop {
        let Ok(line) = conn.line() else { return None };
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        run.hellos.push(text.clone());
        let Some(a) = text
            .strip_prefix("KEY ")
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| (1..=256).contains(n))
        else {
            // As time_server answers a line it cannot accept (labs/time-protocol.md).
            let error = format!("ERROR expected 'KEY <public key>', got {text:?}\n");
            let _ = conn.stream.write_all(error.as_bytes());
            return None;
        };
        // Key 0: a private key b with a^b = 256 (mod p), once, if one exists.
        let zero = (play == Play::KeyZero && !zero_sent)
            .then(|| (2..=255).find(|&b| power_mod(a, b, P) == 256))
            .flatten();
        let mine = match zero {
            Some(b) => KeyPair::from_private(b),
            None => loop {
                let k = KeyPair::generate(&mut rng);
                if caesar_key(k.shared_secret(a)) != 0 {
                    break k;
                }
            },
        };
        let _ = conn
            .stream
            .write_all(format!("KEY {}\n", mine.public).as_bytes());
        zero_sent |= zero.is_some();
        let key = caesar_key(mine.shared_secret(a));
        if key != 0 {
            return Some(key);
        }
    }
}

fn c_hello(ctx: &Ctx) -> Outcome {
    let run = run_client(ctx, Play::Normal)?;
    let first = run.hellos.first().cloned().unwrap_or_default();
    let ok = first
        .strip_prefix("KEY ")
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| (1..=256).contains(&n));
    if ok {
        return Ok(());
    }
    Err(Failure::bytes(
        b"KEY 146",
        first.as_bytes(),
        "the client's first line is not KEY <A>",
        "the client starts with KEY, a space, g^a mod p in decimal (p = 257, g = 11, a private from 2 to 255), and \\n",
    ))
}

fn c_request(ctx: &Ctx) -> Outcome {
    let run = run_client(ctx, Play::Normal)?;
    let request = run.request.unwrap_or_default();
    if answer_for(&request).is_some() {
        return Ok(());
    }
    Err(Failure::bytes(
        b"TIME",
        &request,
        "the request frame, unshifted with the agreed key, is not TIME, DATE or TEMP",
        "after the handshake: 2 length bytes (big-endian, not shifted), then the request with each byte shifted by (s mod 256), s = B^a mod p",
    ))
}

fn printed(run: &Run, what: &str) -> Outcome {
    if run.answered.is_empty() {
        return Err(Failure::new(
            format!(
                "the client's session did not get as far as an answer; it sent {:?}",
                run.hellos
            ),
            "the handshake and the request frame must be right first (see the tests above)",
        ));
    }
    let Some(missing) = run.answered.iter().find(|a| !run.stdout.contains(**a)) else {
        return Ok(());
    };
    let tail: String = run
        .stdout
        .chars()
        .rev()
        .take(200)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Err(Failure::bytes(
        missing.as_bytes(),
        tail.as_bytes(),
        format!("the client did not print the answer {missing:?} ({what})"),
        "read the 2-byte length, then exactly that many bytes (in a loop: one recv() may return part), shift each back by the key, and print it",
    ))
}

fn c_answer(ctx: &Ctx) -> Outcome {
    printed(&run_client(ctx, Play::Normal)?, "sent in one segment")
}

fn c_trickle(ctx: &Ctx) -> Outcome {
    printed(&run_client(ctx, Play::Trickle)?, "sent one byte at a time")
}

fn c_key_zero(ctx: &Ctx) -> Outcome {
    // A client whose private key is 64, 128 or 192 sends KEY 1, for which no key 0 exists: run it again.
    for _ in 0..3 {
        let run = run_client(ctx, Play::KeyZero)?;
        if run.hellos.first().is_some_and(|h| h == "KEY 1") {
            continue;
        }
        if run.hellos.len() < 2 {
            return Err(Failure::new(
                format!(
                    "after check's KEY line made the key 0 the client sent {:?}",
                    run.hellos
                ),
                "a shared secret of 256 gives key 0, which would send plain text: both sides exchange again, and the client sends a new KEY line (labs/time-protocol.md, step 4)",
            ));
        }
        return printed(&run, "after a second key exchange");
    }
    Ok(())
}

fn c_closes(ctx: &Ctx) -> Outcome {
    let run = run_client(ctx, Play::Normal)?;
    printed(&run, "before closing")?;
    if run.closed {
        return Ok(());
    }
    Err(Failure::new(
        "the client never closed its connection after its answer",
        "the client ends the session by closing the connection (FIN); there is no bye message",
    ))
}
