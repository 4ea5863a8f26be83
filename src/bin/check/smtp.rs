//! smtp-client: K&R assignment 3. The client sends one email by speaking
//! SMTP (RFC 5321) on a TCP socket: it waits for the server's `220`
//! greeting, sends `EHLO` (or `HELO` when the server does not know EHLO),
//! `MAIL FROM:`, `RCPT TO:`, `DATA`, the message with its lines ending in
//! CRLF and dot-stuffed, the lone `.` that ends it, and `QUIT`, reading the
//! whole reply to each command before the next.
//!
//! check plays the mail server and runs the client once per test with
//! `{host}` and `{port}` filled in. The message body comes from check: the
//! client gets it on its standard input (after the `--input` text, if
//! any), so a client reads its body from stdin, or takes it as an option
//! through the shell: `--body "$(cat)"`. The recipient and sender are the
//! client's own; check accepts any (except in the 550 test, where it
//! refuses every recipient). Its adversaries: a greeting that comes late,
//! an EHLO reply of four lines written in pieces (the HELO reply, for a
//! client that says HELO first, as the K&R skeleton does), a 502 to EHLO, a
//! 550 to RCPT TO and a 421 that closes the connection.

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::Ctx;
use crate::http::Conn;
use crate::report::{Failure, Outcome, Test};
use crate::spawn;
use crate::wire;

pub fn tests() -> Vec<Test> {
    vec![
        Test::new(
            "waits for the 220 greeting before sending (a greeting 1 s late)",
            1,
            late_greeting,
        ),
        Test::new(
            "reads the whole reply when it arrives in pieces (EHLO: 4 lines)",
            2,
            split_ehlo,
        ),
        Test::new("falls back to HELO after 502 to EHLO", 1, helo_fallback),
        Test::new(
            "MAIL FROM, RCPT TO, DATA in order, each line ending in CRLF",
            2,
            commands,
        ),
        Test::new(
            "the message's lines end in CRLF and it ends with CRLF.CRLF",
            1,
            message_end,
        ),
        Test::new(
            "dot-stuffing: body lines that start with '.' arrive intact",
            2,
            dot_stuffing,
        ),
        Test::new("QUIT after the message is accepted", 1, quit),
        Test::new(
            "550 to RCPT TO: the client reports an error",
            1,
            refused_550,
        ),
        Test::new(
            "421 and a closed connection: the client reports an error",
            1,
            closing_421,
        ),
    ]
}

/// How check's server behaves in one run of the client.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Play {
    Normal,
    LateGreeting,
    SplitEhlo,
    Refuse502,
    Refuse550,
    Close421,
}

/// The body of every test but dot-stuffing: no line starts with a dot.
const PLAIN_BODY: &str = "Hello from check's smtp-client lab.\nI love computer networks!\n";
/// The dot-stuffing body: a line that starts with a dot, a lone dot (which
/// would end the message early), two dots, and a line after them.
const DOTTED_LINES: [&str; 5] = [
    "check's dot-stuffing test:",
    ".a line that starts with a dot",
    ".",
    "..two dots",
    "the last line, after the lone dot",
];

/// The greeting and the reply to EHLO, as a real server (Postfix) words them.
const GREETING: &[u8] = b"220 check.invalid ESMTP check\r\n";
const EHLO_REPLY: &[u8] =
    b"250-check.invalid greets you\r\n250-SIZE 10485760\r\n250-8BITMIME\r\n250 HELP\r\n";
const HELO_REPLY: &[u8] = b"250 check.invalid greets you\r\n";
/// How late the greeting comes in the late-greeting test.
const GREETING_DELAY: Duration = Duration::from_secs(1);

/// What one run of the client did, as check's server saw it.
#[derive(Default)]
struct Session {
    /// Bytes the client sent when it should have been waiting: before the
    /// greeting, or before the last line of the EHLO reply.
    early: Vec<u8>,
    /// Each command line as it came, line end included.
    commands: Vec<Vec<u8>>,
    /// The message after 354, the terminating line included.
    data: Vec<u8>,
    /// Whether the lone "." line came.
    data_ended: bool,
    quit: bool,
    /// The client's exit status (None: still running at the timeout).
    status: Option<std::process::ExitStatus>,
    /// What the client printed, stdout then stderr.
    output: String,
}

impl Session {
    fn verbs(&self) -> Vec<String> {
        self.commands.iter().map(|c| verb(c)).collect()
    }

    fn delivered(&self) -> bool {
        self.data_ended
    }
}

/// The command word: `MAIL FROM:` and `RCPT TO:` count as MAIL and RCPT.
fn verb(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line).to_ascii_uppercase();
    text.split([' ', ':', '\r', '\n'])
        .next()
        .unwrap_or("")
        .to_string()
}

/// Runs the client once against check's server playing `play`.
fn run(ctx: &Ctx, play: Play, body: &str) -> Result<Session, Failure> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Failure::new(format!("cannot listen: {e}"), "check itself failed"))?;
    let port = listener
        .local_addr()
        .map_err(|e| Failure::new(e.to_string(), "check itself failed"))?
        .port();
    let command = spawn::fill(
        ctx.exec.as_deref().unwrap_or(""),
        &[("host", "127.0.0.1".into()), ("port", port.to_string())],
    );
    let mut stdin = ctx.input.clone();
    stdin.extend_from_slice(body.as_bytes());
    let mut child = spawn::start(&command, &stdin)
        .map_err(|e| Failure::new(format!("{e:#}"), "the --exec command could not be started"))?;
    let end = Instant::now() + ctx.timeout + GREETING_DELAY;
    let stream = wire::accept_client(&listener, &mut child, end)?;
    let mut session = Session::default();
    serve(stream, play, end, &mut session);
    // The client has had its say; it may take the rest of the time to exit.
    session.status = child.wait_for(
        end.saturating_duration_since(Instant::now())
            .max(Duration::from_millis(300)),
    );
    session.output = String::from_utf8_lossy(&child.stdout()).into_owned()
        + &String::from_utf8_lossy(&child.stderr());
    Ok(session)
}

/// check's side of the dialogue, one command and one reply at a time,
/// until QUIT, a close, or the deadline.
fn serve(stream: TcpStream, play: Play, end: Instant, s: &mut Session) {
    let mut conn = Conn::new(stream, end);
    if play == Play::LateGreeting {
        s.early = waiting(&conn.stream, GREETING_DELAY);
    }
    if !send(&mut conn, GREETING) {
        return;
    }
    let mut recipients = 0;
    while let Ok(line) = conn.line() {
        let verb = verb(&line);
        s.commands.push(line);
        let reply: &[u8] = match (verb.as_str(), play) {
            ("EHLO", Play::Refuse502) => b"502 5.5.2 EHLO not implemented, say HELO\r\n",
            ("EHLO", Play::SplitEhlo) => {
                s.early = in_pieces(&mut conn, EHLO_REPLY);
                continue;
            }
            ("EHLO", _) => EHLO_REPLY,
            // A client that says HELO first gets its one-line reply in pieces.
            ("HELO", Play::SplitEhlo) => {
                s.early = in_pieces(&mut conn, HELO_REPLY);
                continue;
            }
            ("HELO", _) => HELO_REPLY,
            ("MAIL", Play::Close421) => {
                send(
                    &mut conn,
                    b"421 4.3.2 check.invalid shutting down, closing the connection\r\n",
                );
                break;
            }
            ("MAIL", _) => b"250 2.1.0 sender ok\r\n",
            ("RCPT", Play::Refuse550) => b"550 5.1.1 no such mailbox here\r\n",
            ("RCPT", _) => {
                recipients += 1;
                b"250 2.1.5 recipient ok\r\n"
            }
            // RFC 5321 §3.3: DATA with no recipient accepted fails (554 or 503).
            ("DATA", _) if recipients == 0 => b"554 5.5.1 no valid recipients\r\n",
            ("DATA", _) => {
                send(&mut conn, b"354 end data with <CR><LF>.<CR><LF>\r\n");
                read_message(&mut conn, s);
                b"250 2.0.0 message queued\r\n"
            }
            ("QUIT", _) => {
                s.quit = true;
                send(&mut conn, b"221 2.0.0 bye\r\n");
                break;
            }
            ("RSET" | "NOOP", _) => b"250 2.0.0 ok\r\n",
            _ => b"500 5.5.2 command not recognized\r\n",
        };
        if !send(&mut conn, reply) {
            break;
        }
    }
    // Whatever ended the dialogue, close, so the client is not left waiting.
    let _ = conn.stream.shutdown(Shutdown::Both);
}

/// Writes a reply; false if the client has gone.
fn send(conn: &mut Conn, bytes: &[u8]) -> bool {
    conn.stream.write_all(bytes).is_ok()
}

/// What the client sends within `wait` while it should be silent (it is
/// peeked at, not read, so the dialogue can still use it).
fn waiting(stream: &TcpStream, wait: Duration) -> Vec<u8> {
    let _ = stream.set_read_timeout(Some(wait));
    let mut buf = [0u8; 512];
    match stream.peek(&mut buf) {
        Ok(n) => buf[..n].to_vec(),
        // A timeout (WouldBlock or TimedOut): the client waited, as it should.
        Err(_) => Vec::new(),
    }
}

/// Writes a reply in pieces of 13 bytes; returns what the client sent
/// before the reply was complete. The client gets time to go wrong where
/// the usual mistakes would: 400 ms after the first piece (one `recv()`
/// returns it) and after the piece that ends the first line (one
/// `readline()` returns it), 50 ms after the others.
fn in_pieces(conn: &mut Conn, reply: &[u8]) -> Vec<u8> {
    let pieces: Vec<&[u8]> = reply.chunks(13).collect();
    let first_line = reply.iter().position(|&b| b == b'\n').unwrap_or(0);
    let mut early = conn.leftover().to_vec();
    let mut sent = 0;
    for (i, piece) in pieces.iter().enumerate() {
        if !send(conn, piece) {
            break;
        }
        let ends_line_one = (sent..sent + piece.len()).contains(&first_line);
        sent += piece.len();
        if i + 1 < pieces.len() && early.is_empty() {
            let pause = if i == 0 || ends_line_one { 400 } else { 50 };
            early = waiting(&conn.stream, Duration::from_millis(pause));
        }
    }
    early
}

/// The message after 354: lines until one that is a lone ".".
fn read_message(conn: &mut Conn, s: &mut Session) {
    while let Ok(line) = conn.line() {
        s.data.extend_from_slice(&line);
        if line == b".\r\n" || line == b".\n" {
            s.data_ended = true;
            return;
        }
        if s.data.len() > 1024 * 1024 {
            return;
        }
    }
}

/// The message without its terminating line, dot-stuffing undone (RFC 5321
/// §4.5.2: a line's leading dot is removed), with CRLF line ends.
fn unstuffed(data: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(data);
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    if lines.last().is_some_and(|l| l.trim_end() == ".") {
        lines.pop();
    }
    let mut out = Vec::new();
    for line in lines {
        let line = line.trim_end_matches(['\r', '\n']);
        out.extend_from_slice(line.strip_prefix('.').unwrap_or(line).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The failure for a client that never got as far as `what`.
fn not_reached(s: &Session, what: &str) -> Failure {
    let sent: Vec<String> = s
        .commands
        .iter()
        .map(|c| String::from_utf8_lossy(c).trim_end().to_string())
        .collect();
    Failure::new(
        format!("the dialogue never got as far as {what}; the client sent {sent:?}"),
        "after each command the client reads the server's whole reply and goes on when its code says so (2yz done, 354 go on): see the other tests for what went wrong first",
    )
}

fn late_greeting(ctx: &Ctx) -> Outcome {
    let s = run(ctx, Play::LateGreeting, PLAIN_BODY)?;
    if !s.early.is_empty() {
        return Err(Failure::bytes(
            b"",
            &s.early,
            "the client sent a command before the server's 220 greeting",
            "the SMTP server speaks first (RFC 5321 §3.1): read the 220 line before sending EHLO; a server that sees a command before its greeting may drop the client as a spammer",
        ));
    }
    if !s.verbs().iter().any(|v| v == "EHLO" || v == "HELO") {
        return Err(not_reached(&s, "EHLO after the greeting"));
    }
    Ok(())
}

fn split_ehlo(ctx: &Ctx) -> Outcome {
    let s = run(ctx, Play::SplitEhlo, PLAIN_BODY)?;
    if !s.early.is_empty() {
        let helo = s.verbs().first().is_some_and(|v| v == "HELO");
        return Err(Failure::bytes(
            if helo { HELO_REPLY } else { EHLO_REPLY },
            &s.early,
            format!(
                "the client sent its next command before the whole {} reply arrived",
                if helo { "HELO" } else { "EHLO" }
            ),
            "a reply ends with the line that has a space after its code ('250 '); the lines before it have '250-' (RFC 5321 §4.2.1). TCP may deliver it in pieces: read up to that line's \\r\\n, not once with recv(1024) and not one line",
        ));
    }
    if !s.verbs().iter().any(|v| v == "MAIL") {
        return Err(not_reached(&s, "MAIL FROM after EHLO (or HELO)"));
    }
    Ok(())
}

fn helo_fallback(ctx: &Ctx) -> Outcome {
    let s = run(ctx, Play::Refuse502, PLAIN_BODY)?;
    let verbs = s.verbs();
    let after_ehlo = verbs.iter().skip_while(|v| *v != "EHLO").nth(1);
    if verbs.first().is_some_and(|v| v == "HELO") || after_ehlo.is_some_and(|v| v == "HELO") {
        if s.delivered() {
            return Ok(());
        }
        return Err(not_reached(&s, "the end of the message after HELO"));
    }
    Err(Failure::new(
        match after_ehlo {
            Some(v) => format!("after 502 to EHLO the client sent {v}"),
            None => "after 502 to EHLO the client sent nothing more".into(),
        },
        "502 says the server does not know EHLO (an RFC 821 server): say HELO instead and go on (RFC 5321 §3.2)",
    ))
}

fn commands(ctx: &Ctx) -> Outcome {
    let s = run(ctx, Play::Normal, PLAIN_BODY)?;
    if let Some(line) = s.commands.iter().find(|c| !c.ends_with(b"\r\n")) {
        let mut want = line.trim_ascii_end().to_vec();
        want.extend_from_slice(b"\r\n");
        return Err(Failure::bytes(
            &want,
            line,
            "a command line does not end with CRLF",
            "SMTP lines end with \\r\\n (RFC 5321 §2.3.8); a server may wait for ever for the \\r, or refuse a bare \\n",
        ));
    }
    let verbs = s.verbs();
    let before_data: Vec<&str> = verbs
        .iter()
        .map(String::as_str)
        .take_while(|v| *v != "DATA")
        .collect();
    let in_order = matches!(before_data.first(), Some(&"EHLO" | &"HELO"))
        && before_data.get(1) == Some(&"MAIL")
        && before_data.len() > 2
        && before_data[2..].iter().all(|v| *v == "RCPT")
        && verbs.iter().any(|v| v == "DATA");
    let syntax = s.commands.iter().all(|c| match verb(c).as_str() {
        "MAIL" => c.to_ascii_uppercase().starts_with(b"MAIL FROM:"),
        "RCPT" => c.to_ascii_uppercase().starts_with(b"RCPT TO:"),
        _ => true,
    });
    if in_order && syntax {
        return Ok(());
    }
    Err(Failure::new(
        format!("the commands came as {verbs:?}"),
        "the order is EHLO (or HELO), MAIL FROM:<sender>, one RCPT TO:<recipient> per recipient, DATA (RFC 5321 §3.3), each after the reply to the one before",
    ))
}

fn message_end(ctx: &Ctx) -> Outcome {
    let s = run(ctx, Play::Normal, PLAIN_BODY)?;
    if !s.verbs().iter().any(|v| v == "DATA") {
        return Err(not_reached(&s, "DATA"));
    }
    let tail = &s.data[s.data.len().saturating_sub(40)..];
    if !s.data_ended {
        return Err(Failure::bytes(
            b"...\r\n.\r\n",
            tail,
            format!(
                "no line with a lone '.' came within {:?} after 354",
                ctx.timeout
            ),
            "the message ends with \\r\\n.\\r\\n: the last line's CRLF, a dot, CRLF (RFC 5321 §4.1.1.4); a dot right after the text ('networks!.\\r\\n') is part of the text, and the server waits for ever",
        ));
    }
    let bare_lf = s
        .data
        .windows(2)
        .position(|w| w[1] == b'\n' && w[0] != b'\r');
    if bare_lf.is_none() && (s.data == b".\r\n" || s.data.ends_with(b"\r\n.\r\n")) {
        return Ok(());
    }
    let mut want = unstuffed(&s.data);
    want.extend_from_slice(b".\r\n");
    Err(Failure::bytes(
        &want,
        &s.data,
        "a line of the message does not end with CRLF",
        "every line of the message, the lone '.' too, ends with \\r\\n (RFC 5321 §2.3.8): a bare \\n is not a line end to SMTP",
    ))
}

fn dot_stuffing(ctx: &Ctx) -> Outcome {
    let body = DOTTED_LINES.join("\n") + "\n";
    let s = run(ctx, Play::Normal, &body)?;
    if !s.verbs().iter().any(|v| v == "DATA") {
        return Err(not_reached(&s, "DATA"));
    }
    let want = DOTTED_LINES.join("\r\n") + "\r\n";
    let got = unstuffed(&s.data);
    if got.windows(want.len()).any(|w| w == want.as_bytes()) {
        return Ok(());
    }
    // Show the message from where the body begins, if it is there at all.
    let start = got
        .windows(DOTTED_LINES[0].len())
        .position(|w| w == DOTTED_LINES[0].as_bytes())
        .unwrap_or(0);
    Err(Failure::bytes(
        want.as_bytes(),
        &got[start..],
        "the body check gave on stdin did not arrive intact (dot-stuffing undone)",
        "a line that starts with '.' is sent with one more '.' in front, and the server removes it (RFC 5321 §4.5.2); without it a lone '.' in the text ends the message early and the rest arrives as commands",
    ))
}

fn quit(ctx: &Ctx) -> Outcome {
    let s = run(ctx, Play::Normal, PLAIN_BODY)?;
    if !s.delivered() {
        return Err(not_reached(&s, "the end of the message"));
    }
    if s.quit {
        return Ok(());
    }
    let last = s.commands.last().cloned().unwrap_or_default();
    Err(Failure::bytes(
        b"QUIT\r\n",
        &last,
        "after 250 to the message the client closed without QUIT",
        "QUIT asks the server to close (221) (RFC 5321 §4.1.1.10): without it the server logs a lost connection",
    ))
}

/// Whether the client said it failed: a non-zero exit status, or a line
/// with "error", "fail", "refused", "rejected", "unexpected" or "not
/// received" (the K&R skeleton's "250 reply not received from server.")
/// in what it printed. check's own replies contain none of these words.
fn reported_error(s: &Session) -> bool {
    let out = s.output.to_ascii_lowercase();
    s.status.is_some_and(|st| !st.success())
        || [
            "error",
            "fail",
            "refused",
            "rejected",
            "unexpected",
            "not received",
        ]
        .iter()
        .any(|w| out.contains(w))
}

fn exit_described(s: &Session) -> String {
    match s.status {
        Some(st) => format!("the client exited with {st}"),
        None => "the client was still running at the timeout".into(),
    }
}

fn refused_550(ctx: &Ctx) -> Outcome {
    let s = run(ctx, Play::Refuse550, PLAIN_BODY)?;
    if !s.verbs().iter().any(|v| v == "RCPT") {
        return Err(not_reached(&s, "RCPT TO"));
    }
    if reported_error(&s) && s.status.is_some() {
        return Ok(());
    }
    Err(Failure::new(
        format!(
            "check answered RCPT TO with 550; {} and printed no error",
            exit_described(&s)
        ),
        "550 is a permanent refusal (5yz): the mailbox does not exist. Check every reply's code; on 5yz say so (an error line, exit status 1) instead of going on with DATA",
    ))
}

fn closing_421(ctx: &Ctx) -> Outcome {
    let s = run(ctx, Play::Close421, PLAIN_BODY)?;
    if !s.verbs().iter().any(|v| v == "MAIL") {
        return Err(not_reached(&s, "MAIL FROM"));
    }
    if reported_error(&s) && s.status.is_some() {
        return Ok(());
    }
    Err(Failure::new(
        format!(
            "check answered MAIL FROM with 421 and closed the connection; {} and printed no error",
            exit_described(&s)
        ),
        "421 means the server is closing the connection (RFC 5321 §3.8): the message was not sent. Check the code, and treat the server's FIN (recv() returning nothing) as an error, not as a reply",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_is_undone_and_the_end_line_dropped() {
        assert_eq!(unstuffed(b"a\r\n..b\r\n.\r\n"), b"a\r\n.b\r\n");
        assert_eq!(unstuffed(b"a\n.\n"), b"a\r\n");
    }

    #[test]
    fn verbs_ignore_case_and_arguments() {
        assert_eq!(verb(b"mail from:<a@b>\r\n"), "MAIL");
        assert_eq!(verb(b"RCPT TO: <a@b>\n"), "RCPT");
        assert_eq!(verb(b"QUIT\r\n"), "QUIT");
    }
}
