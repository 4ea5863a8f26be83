//! proxy_logger against real clients: curl as a proxy client, raw TCP for
//! lines that arrive one by one, pipelining, bad heads and slow clients,
//! headless Chromium coming back to a page it has cached, and Chromium
//! against the seed's P12 server (tests/classic/P12Server.py).
//!
//! Bad inputs tried (each answered 400 with the proxy still serving, see
//! `bad_heads_get_400_and_the_proxy_keeps_serving`): binary garbage, a line
//! that is not HTTP, no method, a space in the target, a header line without
//! a colon, a head with no empty line (cut off by FIN), a 70 KiB header line,
//! bad Content-Lengths (letters, a sign, two of them), a body cut off by
//! FIN; in
//! `what_a_client_sends_cannot_drive_the_terminal`: escape sequences, U+202E,
//! U+2028 and a zero-width space in header values; and in
//! `trickling_and_silent_clients_do_not_lock_out_a_quick_one`: a byte at a
//! time, a line at a time, and nothing at all.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::browser::Chromium;
use common::{Server, WAIT};

const EXE: &str = env!("CARGO_BIN_EXE_proxy_logger");

fn start() -> Server {
    Server::start(EXE, &["--port", "0"])
}

/// One logged request: its first line (time, client, request number), the
/// head lines as they were printed (quoted and escaped), and the verdict.
#[derive(Debug)]
struct Entry {
    peer: String,
    first: String,
    shown: Vec<String>,
    verdict: Option<String>,
}

impl Entry {
    /// The head lines with the log's quoting undone (for plain text only).
    fn lines(&self) -> Vec<String> {
        let unquote = |s: &String| {
            let inner = s.strip_prefix('"').and_then(|s| s.strip_suffix('"'));
            inner.unwrap_or(s).replace("\\\"", "\"")
        };
        self.shown.iter().map(unquote).collect()
    }

    fn request_line(&self) -> String {
        self.lines().first().cloned().unwrap_or_default()
    }

    fn has_line(&self, line: &str) -> bool {
        self.lines().iter().any(|l| l == line)
    }

    fn verdict(&self) -> &str {
        self.verdict.as_deref().unwrap_or("")
    }
}

/// The requests logged so far. Lines of concurrent connections interleave,
/// so each line goes to the last entry of its client (the second word).
fn entries(server: &Server) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for line in server.lines_so_far().into_iter().skip(1) {
        let mut words = line.splitn(3, ' ');
        let (Some(_time), Some(peer), Some(rest)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        if rest.starts_with("request ") && rest.ends_with(" on this connection):") {
            entries.push(Entry {
                peer: peer.to_string(),
                first: line.clone(),
                shown: Vec::new(),
                verdict: None,
            });
            continue;
        }
        let Some(entry) = entries.iter_mut().rev().find(|e| e.peer == peer) else {
            continue;
        };
        if let Some(shown) = rest.strip_prefix("  ") {
            entry.shown.push(shown.to_string());
        } else if entry.verdict.is_none() {
            entry.verdict = Some(rest.to_string());
        }
    }
    entries
}

/// Waits (up to [`WAIT`]) until the logged requests satisfy `done`.
fn wait_for_entries(server: &Server, done: impl Fn(&[Entry]) -> bool) -> Vec<Entry> {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = entries(server);
        if done(&found) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "log not as expected within {WAIT:?}: {found:#?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `n` logged requests, each with its verdict.
fn wait_for_requests(server: &Server, n: usize) -> Vec<Entry> {
    wait_for_entries(server, |e| {
        e.len() >= n && e.iter().all(|e| e.verdict().contains("answered"))
    })
}

/// Waits (up to [`WAIT`]) for a line containing `needle`, printed at any
/// time: unlike `expect_line`, it does not depend on the order of lines.
fn wait_for_log(server: &Server, needle: &str) {
    let deadline = Instant::now() + WAIT;
    while !server.lines_so_far().iter().any(|l| l.contains(needle)) {
        assert!(
            Instant::now() < deadline,
            "no line with {needle:?} within {WAIT:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs curl with `args` through the proxy.
fn curl(proxy: SocketAddr, args: &[&str]) -> common::Output {
    let proxy = proxy.to_string();
    let mut all = vec!["-sS", "--max-time", "10", "-x", proxy.as_str()];
    all.extend_from_slice(args);
    common::run("curl", &all, b"")
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to proxy_logger");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream
}

/// A response as read off the wire by [`read_response`].
#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Reads one response: lines up to the empty one, then a Content-Length
/// body (none for HEAD and 304). Small on purpose: proxy_logger's answers
/// are always framed this way.
fn read_response(reader: &mut impl BufRead, method: &str) -> Response {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("a response line");
        assert!(n > 0, "closed inside a response head: {head:?}");
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .map_or(0, |v| v.parse().expect("a numeric Content-Length"));
    let mut body = vec![
        0;
        if method == "HEAD" || status == 304 {
            0
        } else {
            length
        }
    ];
    reader.read_exact(&mut body).expect("the response body");
    Response { status, head, body }
}

/// Sends `bytes` on a fresh connection, half-closes it, and returns
/// everything the server sent back before it closed.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = connect(addr);
    stream.write_all(bytes).expect("send");
    stream
        .shutdown(Shutdown::Write)
        .expect("shutdown(Write) sends FIN");
    let mut all = Vec::new();
    stream
        .read_to_end(&mut all)
        .expect("read until the server closes");
    all
}

fn status_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines().next().unwrap_or("").to_string()
}

#[test]
fn help_shows_the_defaults() {
    let out = common::run(EXE, &["--help"], b"");
    assert_eq!(out.code(), Some(0));
    for default in ["127.0.0.1", "2000", "512", "30s", "60s"] {
        let shown = format!("[default: {default}]");
        assert!(out.stdout.contains(&shown), "{shown}: {}", out.stdout);
    }
}

#[test]
fn a_taken_port_is_an_error_with_a_hint() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port().to_string();
    let out = common::run(EXE, &["--port", &port], b"");
    common::assert_error_and_hint(&out, "already holds TCP port");
}

#[test]
fn curl_through_the_proxy_is_logged_head_and_all() {
    if !common::have_tool("curl") {
        return;
    }
    let proxy = start();
    // .invalid never resolves (RFC 2606): curl hands the whole URL to the
    // proxy and never looks the name up itself.
    let url = "http://example.invalid/hello?x=1";
    let out = curl(proxy.addr, &["-H", "X-Lab: p12", url]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("proxy_logger logged this request"),
        "{}",
        out.stdout
    );
    let entry = &wait_for_requests(&proxy, 1)[0];
    assert!(
        entry.first.contains(" 127.0.0.1:"),
        "client address: {}",
        entry.first
    );
    assert!(
        entry
            .first
            .ends_with(" request 1 (number 1 on this connection):")
    );
    // Absolute form: the full URL in the request line (RFC 9112 §3.2.2).
    assert_eq!(entry.request_line(), format!("GET {url} HTTP/1.1"));
    assert!(entry.has_line("Host: example.invalid"), "{entry:#?}");
    assert!(entry.has_line("X-Lab: p12"), "{entry:#?}");
    assert_eq!(entry.verdict(), "plain GET: answered 200 OK");
}

#[test]
fn conditional_gets_are_marked_and_answered_304() {
    if !common::have_tool("curl") {
        return;
    }
    let proxy = start();
    let code = |args: &[&str]| {
        let mut all = vec!["-o", "/dev/null", "-w", "%{http_code}"];
        all.extend_from_slice(args);
        let out = curl(proxy.addr, &all);
        assert_eq!(out.code(), Some(0), "{}", out.stderr);
        out.stdout
    };
    let url = "http://example.invalid/page";
    assert_eq!(code(&["-H", "If-None-Match: \"v1\"", url]), "304");
    // curl -z DATE sends If-Modified-Since.
    assert_eq!(code(&["-z", "Tue, 28 Jul 2020 09:20:49 GMT", url]), "304");
    assert_eq!(code(&["-I", "-H", "If-None-Match: \"v1\"", url]), "304");
    // A precondition on a POST is not a cache validation.
    assert_eq!(
        code(&["-d", "x=1", "-H", "If-None-Match: \"v1\"", url]),
        "200"
    );
    assert_eq!(code(&[url]), "200");

    let entries = wait_for_requests(&proxy, 5);
    let verdicts: Vec<&str> = entries.iter().map(Entry::verdict).collect();
    assert_eq!(
        verdicts,
        [
            "conditional GET (If-None-Match): answered 304 Not Modified",
            "conditional GET (If-Modified-Since): answered 304 Not Modified",
            "conditional HEAD (If-None-Match): answered 304 Not Modified",
            "plain POST: answered 200 OK",
            "plain GET: answered 200 OK",
        ]
    );
    assert!(
        entries[0].has_line("If-None-Match: \"v1\""),
        "{:#?}",
        entries[0]
    );
    assert!(entries[1].has_line("If-Modified-Since: Tue, 28 Jul 2020 09:20:49 GMT"));
}

#[test]
fn each_line_is_printed_as_it_arrives() {
    let proxy = start();
    let mut stream = connect(proxy.addr);
    let lines = [
        "GET http://example.invalid/slow HTTP/1.1\r\n",
        "Host: exam",
        "ple.invalid\r\n",
        "If-Modified-Since: Tue, 28 Jul 2020 09:20:49 GMT\r",
        "\n",
    ];
    // Each piece goes out alone, and after each complete line the log must
    // show it before the next piece is sent: the server prints what
    // read_line() returns, it does not wait for the whole head.
    let mut logged = 0;
    for piece in lines {
        stream.write_all(piece.as_bytes()).expect("send a piece");
        if piece.ends_with('\n') {
            logged += 1;
            wait_for_entries(&proxy, |e| e.len() == 1 && e[0].shown.len() == logged);
        }
    }
    // Nothing may come back before the head is complete.
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let early = stream.read(&mut [0u8; 1]);
    assert!(
        early.as_ref().is_err_and(socketlab::explain::is_timeout),
        "the server answered a partial head: {early:?}"
    );
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream.write_all(b"\r\n").expect("send the empty line");
    let response = read_response(&mut BufReader::new(stream), "GET");
    assert_eq!(response.status, 304, "{response:?}");
    let entry = &wait_for_requests(&proxy, 1)[0];
    assert!(entry.has_line("Host: example.invalid"), "{entry:#?}");
    assert_eq!(
        entry.verdict(),
        "conditional GET (If-Modified-Since): answered 304 Not Modified"
    );
}

#[test]
fn pipelined_requests_on_one_connection_are_answered_in_order() {
    let proxy = start();
    // One write, four requests; the POST's body looks like a request, and
    // must be skipped as body (Content-Length: 28), not logged as one.
    let requests = concat!(
        "GET http://example.invalid/1 HTTP/1.1\r\nHost: example.invalid\r\nIf-None-Match: \"a\"\r\n\r\n",
        "POST http://example.invalid/2 HTTP/1.1\r\nHost: example.invalid\r\nContent-Length: 28\r\n\r\n",
        "GET /smuggled HTTP/1.1\r\n\r\n\r\n",
        "HEAD http://example.invalid/3 HTTP/1.1\r\nHost: example.invalid\r\n\r\n",
        "GET http://example.invalid/4 HTTP/1.1\r\nHost: example.invalid\r\nConnection: close\r\n\r\n",
    );
    let mut stream = connect(proxy.addr);
    stream.write_all(requests.as_bytes()).expect("send");
    let mut reader = BufReader::new(stream);
    let mut statuses = Vec::new();
    for method in ["GET", "POST", "HEAD", "GET"] {
        let response = read_response(&mut reader, method);
        if method == "HEAD" {
            assert!(
                response.head.contains("Content-Length: 72\r\n"),
                "{response:?}"
            );
        }
        statuses.push(response.status);
    }
    assert_eq!(statuses, [304, 200, 200, 200]);
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).expect("read until close");
    assert!(rest.is_empty(), "bytes after Connection: close: {rest:?}");

    let entries = wait_for_requests(&proxy, 4);
    let lines: Vec<String> = entries.iter().map(Entry::request_line).collect();
    assert_eq!(
        lines,
        [
            "GET http://example.invalid/1 HTTP/1.1",
            "POST http://example.invalid/2 HTTP/1.1",
            "HEAD http://example.invalid/3 HTTP/1.1",
            "GET http://example.invalid/4 HTTP/1.1",
        ]
    );
    for (i, entry) in entries.iter().enumerate() {
        let on = format!("(number {} on this connection):", i + 1);
        assert!(entry.first.ends_with(&on), "{entry:#?}");
    }
    proxy.expect_line("closed the connection after 4 requests");
    assert!(!proxy.lines_so_far().iter().any(|l| l.contains("/smuggled")));
}

#[test]
fn a_chunked_body_is_answered_then_the_connection_closed() {
    let proxy = start();
    // proxy_logger does not decode chunks, so it cannot find the request
    // after this body: it answers, says Connection: close, and closes.
    let reply = exchange(
        proxy.addr,
        b"POST http://a/c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nGET /\r\n0\r\n\r\n",
    );
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.contains("Connection: close\r\n"), "{reply}");
    proxy.expect_line("closed the connection after 1 request");
    assert_eq!(entries(&proxy).len(), 1, "the chunk was read as a request");
}

#[test]
fn an_http_1_0_request_is_answered_and_the_connection_closed() {
    let proxy = start();
    let mut stream = connect(proxy.addr);
    // No FIN from this side: the server must close by itself.
    stream
        .write_all(b"GET http://example.invalid/old HTTP/1.0\r\n\r\n")
        .expect("send");
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .expect("the server closes the connection");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.contains("Connection: close\r\n"), "{reply}");
    assert!(
        reply.ends_with("it fetches nothing (see its terminal)\n"),
        "{reply}"
    );
}

#[test]
fn connect_is_logged_and_refused_with_501() {
    if !common::have_tool("curl") {
        return;
    }
    let proxy = start();
    // -p: tunnel through the proxy with CONNECT.
    let out = curl(proxy.addr, &["-p", "https://example.invalid/"]);
    assert_ne!(out.code(), Some(0));
    assert!(out.stderr.contains("501"), "{}", out.stderr);
    let entries = wait_for_requests(&proxy, 1);
    assert_eq!(
        entries[0].request_line(),
        "CONNECT example.invalid:443 HTTP/1.1"
    );
    assert_eq!(
        entries[0].verdict(),
        "CONNECT, a tunnel for HTTPS: answered 501 Not Implemented"
    );
    let again = curl(proxy.addr, &["http://example.invalid/"]);
    assert_eq!(again.code(), Some(0), "{}", again.stderr);
}

#[test]
fn bad_heads_get_400_and_the_proxy_keeps_serving() {
    let mut proxy = start();
    let huge_line = format!(
        "GET http://a/ HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "binary garbage",
            b"\x00\xff\xfe\x1b\x80garbage\r\n\r\n".to_vec(),
            "stream did not contain valid UTF-8",
        ),
        (
            "not HTTP",
            b"HELLO THERE\r\n\r\n".to_vec(),
            "not a request line",
        ),
        (
            "no method",
            b" http://a/ HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            "not a request line",
        ),
        (
            "a space in the target",
            b"GET http://a b/ HTTP/1.1\r\n\r\n".to_vec(),
            "not a request line",
        ),
        (
            "a header line without a colon",
            b"GET http://a/ HTTP/1.1\r\nHost a\r\n\r\n".to_vec(),
            "without a colon",
        ),
        (
            "a head with no empty line, cut off by FIN",
            b"GET http://a/ HTTP/1.1\r\nHost: a\r\n".to_vec(),
            "a cut-off head",
        ),
        (
            "a 70 KiB header line",
            huge_line.into_bytes(),
            "a head over 64 KiB",
        ),
        (
            "letters in Content-Length",
            b"POST http://a/ HTTP/1.1\r\nContent-Length: abc\r\n\r\n".to_vec(),
            "Content-Length",
        ),
        (
            "a sign in Content-Length",
            b"POST http://a/ HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc".to_vec(),
            "Content-Length",
        ),
        (
            "two Content-Lengths",
            b"POST http://a/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
                .to_vec(),
            "Content-Length",
        ),
        (
            "a body cut off by FIN",
            b"POST http://a/ HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc".to_vec(),
            "a cut-off body",
        ),
    ];
    for (name, bytes, _) in &cases {
        let reply = exchange(proxy.addr, bytes);
        assert_eq!(status_line(&reply), "HTTP/1.1 400 Bad Request", "{name}");
        assert!(
            String::from_utf8_lossy(&reply).contains("Connection: close"),
            "{name}"
        );
    }
    let entries = wait_for_entries(&proxy, |e| {
        e.len() == cases.len() && e.iter().all(|e| e.verdict.is_some())
    });
    for (entry, (name, _, why)) in entries.iter().zip(&cases) {
        let verdict = entry.verdict();
        assert!(verdict.contains(why), "{name}: {verdict}");
        assert!(
            verdict.ends_with(": answered 400 Bad Request"),
            "{name}: {verdict}"
        );
    }
    // And it still serves a good request on a kept-alive connection.
    let mut reader = BufReader::new(connect(proxy.addr));
    reader
        .get_mut()
        .write_all(b"GET http://a/ok HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut reader, "GET").status, 200);
    assert!(proxy.is_running());
}

#[test]
fn what_a_client_sends_cannot_drive_the_terminal() {
    let proxy = start();
    // ESC [ 2 J clears the screen, ESC ] 0 ; ... BEL sets the window title,
    // U+202E turns the rest of the line around, U+2028 breaks the line in
    // some terminals and viewers, U+200B hides between letters.
    let request = "GET http://a/esc HTTP/1.1\r\nX-Clear: \x1b[2J\x1b]0;owned\x07\r\n\
                   X-Rtl: abc\u{202e}fed\r\nX-Sep: one\u{2028}two\r\nX-Zw: in\u{200b}visible\r\n\
                   Connection: close\r\n\r\n";
    let reply = exchange(proxy.addr, request.as_bytes());
    assert_eq!(status_line(&reply), "HTTP/1.1 200 OK");
    let entry = &wait_for_requests(&proxy, 1)[0];
    assert_eq!(entry.shown.len(), 6, "{entry:#?}");
    for raw in ['\x1b', '\x07', '\u{202e}', '\u{2028}', '\u{200b}'] {
        let printed = proxy.lines_so_far().iter().any(|l| l.contains(raw));
        assert!(!printed, "{raw:?} reached the terminal: {entry:#?}");
    }
    // Escaped, not dropped: the operator sees that something was there.
    assert!(entry.shown[1].contains("\\u{1b}[2J"), "{entry:#?}");
}

/// A client that sends `piece` again and again, `every` apart, and reads
/// whatever comes back between sends; returns what it got once the
/// server answered or closed (or after [`WAIT`]).
fn trickle(
    addr: SocketAddr,
    start: &'static str,
    piece: &'static str,
) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut stream = connect(addr);
        // The pause between pieces is the read timeout: the client waits
        // for an answer for 100 ms, then sends the next piece.
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        let _ = stream.write_all(start.as_bytes());
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while Instant::now() < deadline && stream.write_all(piece.as_bytes()).is_ok() {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(err) if socketlab::explain::is_timeout(&err) => {}
                Err(_) => break,
            }
            if got.ends_with(b"\r\n\r\n408 Request Timeout\n") {
                break;
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    })
}

/// Issue 11, 8b: clients that trickle a byte or a line at a time, or say
/// nothing, hold every slot (`--max-clients 3`), yet a quick client beside
/// them is answered: each request has one deadline from its first byte (not
/// reset per byte or per line), and a silent connection an idle limit.
#[test]
fn trickling_and_silent_clients_do_not_lock_out_a_quick_one() {
    let args = [
        "--port",
        "0",
        "--max-clients",
        "3",
        "--request-timeout",
        "1s",
        "--idle-timeout",
        "1s",
    ];
    let proxy = Server::start(EXE, &args);
    let head = "GET http://a/slow HTTP/1.1\r\nX-Slow: ";
    let mut tricklers = Vec::new();
    for _ in 0..2 {
        tricklers.push(trickle(proxy.addr, head, "a")); // a byte at a time
        tricklers.push(trickle(
            proxy.addr,
            "GET http://a/lines HTTP/1.1\r\n",
            "X-Line: 1\r\n",
        ));
    }
    let silent: Vec<TcpStream> = (0..3).map(|_| connect(proxy.addr)).collect();

    let mut quick = connect(proxy.addr);
    quick
        .write_all(b"GET http://a/quick HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect("send");
    let response = read_response(&mut BufReader::new(quick), "GET");
    assert_eq!(response.status, 200, "{response:?}");

    for trickler in tricklers {
        let got = trickler.join().expect("trickler thread");
        assert!(
            got.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{got:?}"
        );
    }
    for mut stream in silent {
        let mut got = Vec::new();
        stream.read_to_end(&mut got).expect("closed by the server");
        assert!(got.is_empty(), "a silent client got {got:?}");
    }
    for needle in [
        "did not arrive within --request-timeout: answered 408 Request Timeout",
        "silent for --idle-timeout: closed the connection after 0 requests",
    ] {
        wait_for_log(&proxy, needle);
    }
}

#[test]
fn a_kept_alive_connection_is_closed_after_the_idle_limit() {
    let proxy = Server::start(EXE, &["--port", "0", "--idle-timeout", "200ms"]);
    let mut reader = BufReader::new(connect(proxy.addr));
    reader
        .get_mut()
        .write_all(b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut reader, "GET").status, 200);
    // Nothing more is sent: the server closes (read returns 0), no answer.
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).expect("closed by the server");
    assert!(rest.is_empty(), "{rest:?}");
    proxy.expect_line("silent for --idle-timeout: closed the connection after 1 request");
}

#[test]
fn ctrl_c_prints_the_counts() {
    let proxy = start();
    for request in [
        "GET http://a/1 HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"x\"\r\nConnection: close\r\n\r\n",
        "GET http://a/2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "HEAD http://a/3 HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: Tue, 28 Jul 2020 09:20:49 GMT\r\nConnection: close\r\n\r\n",
    ] {
        assert!(status_line(&exchange(proxy.addr, request.as_bytes())).starts_with("HTTP/1.1 "));
    }
    interrupt_and_expect(proxy, "stopped: 3 requests, 2 of them conditional");
}

#[test]
fn quiet_logs_nothing_but_the_summary() {
    let proxy = Server::start(EXE, &["--port", "0", "--quiet"]);
    let reply = exchange(
        proxy.addr,
        b"GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_line(&reply), "HTTP/1.1 200 OK");
    let lines = interrupt_and_expect(proxy, "stopped: 1 request, 0 of them conditional");
    assert_eq!(lines.len(), 2, "{lines:#?}");
}

/// Sends SIGINT (what Ctrl-C sends), waits for the summary line and the
/// exit, and returns every line printed.
fn interrupt_and_expect(mut proxy: Server, summary: &str) -> Vec<String> {
    let status = Command::new("kill")
        .args(["-INT", &proxy.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    proxy.expect_line(summary);
    let deadline = Instant::now() + WAIT;
    while proxy.is_running() {
        assert!(Instant::now() < deadline, "still running after SIGINT");
        thread::sleep(Duration::from_millis(20));
    }
    proxy.lines_so_far()
}

/// A child process killed when dropped, so that a failed assertion leaves
/// no server behind.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `proxy_logger | head -1`: once nobody reads its stdout, the next log
/// line fails with EPIPE. It must end quietly (status 0) or go on serving,
/// never panic.
#[test]
fn a_closed_stdout_is_no_panic() {
    let mut child = Reaped(
        Command::new(EXE)
            .args(["--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start proxy_logger"),
    );
    let mut first = String::new();
    let mut stdout = BufReader::new(child.0.stdout.take().expect("piped"));
    stdout.read_line(&mut first).expect("the first line");
    drop(stdout); // what `head -1` does when it exits
    let addr = common::listening_addr(&first).expect("an address");
    let request = b"GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    for _ in 0..3 {
        let _ = TcpStream::connect(addr).and_then(|mut s| s.write_all(request));
    }
    let deadline = Instant::now() + WAIT;
    let exited = loop {
        match child.0.try_wait().expect("try_wait") {
            Some(status) => break Some(status),
            None if Instant::now() > deadline => break None,
            None => thread::sleep(Duration::from_millis(20)),
        }
    };
    let _ = child.0.kill();
    let _ = child.0.wait();
    let mut stderr = String::new();
    let _ = child
        .0
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    if let Some(status) = exited {
        assert_eq!(status.code(), Some(0), "{stderr}");
    }
}

/// A GET on a plain connection, for the test origin's /__stats.
fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = connect(addr);
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let response = read_response(&mut BufReader::new(stream), "GET");
    assert_eq!(response.status, 200, "{path}");
    String::from_utf8_lossy(&response.body).into_owned()
}

/// The heart of K&R P12. Chromium loads a page from the origin directly,
/// which stores it in its disk cache (ETag, Last-Modified, and
/// `Cache-Control: no-cache`: "store, but ask before reuse"). Then, with
/// the same profile and proxy_logger as its proxy, it comes back to the
/// page: a revisit, then a reload started by the page's own script. Both
/// must be conditional GETs carrying If-None-Match and If-Modified-Since,
/// and the reload also carries `Cache-Control: max-age=0`. proxy_logger
/// answers 304 both times, so the page the browser ends up showing (title
/// "reloaded") can only have come from its cache.
#[test]
fn chromium_revisits_and_reloads_a_cached_page_with_conditional_gets() {
    common::require!("python3");
    let Some(browser) = Chromium::new() else {
        return;
    };
    let origin = common::origin();
    let proxy = start();
    let url = format!("http://{}/reload-once", origin.addr);

    // Warm the cache: straight to the origin (200, then 304 for the reload).
    let warm = browser.load(&url, None);
    assert_eq!(warm.title(), Some("reloaded"), "{warm:?}");
    let stats = get(origin.addr, "/__stats");
    assert!(stats.contains(r#""/reload-once": 2"#), "{stats}");

    // Back through proxy_logger, which never sends the page itself.
    let back = browser.load(&url, Some(proxy.addr));
    assert_eq!(
        back.title(),
        Some("reloaded"),
        "the cached page was not shown: {back:?}"
    );
    let is_page = |e: &Entry| e.request_line() == format!("GET {url} HTTP/1.1");
    let entries = wait_for_entries(&proxy, |entries| {
        entries
            .iter()
            .filter(|e| is_page(e) && e.verdict.is_some())
            .count()
            >= 2
    });
    let page_requests: Vec<&Entry> = entries.iter().filter(|e| is_page(e)).collect();
    for entry in &page_requests {
        assert!(entry.has_line("If-None-Match: \"p12\""), "{entry:#?}");
        assert!(
            entry.has_line("If-Modified-Since: Tue, 28 Jul 2020 09:20:49 GMT"),
            "{entry:#?}"
        );
        assert_eq!(
            entry.verdict(),
            "conditional GET (If-None-Match, If-Modified-Since): answered 304 Not Modified"
        );
    }
    let reloads = page_requests
        .iter()
        .filter(|e| e.has_line("Cache-Control: max-age=0"))
        .count();
    assert_eq!(reloads, 1, "one reload, with max-age=0: {page_requests:#?}");
    // The origin saw nothing of the second run: it all went to the proxy.
    assert_eq!(get(origin.addr, "/__stats"), stats);
}

/// Worksheet 03 Part E: the seed's P12 server (tests/classic/P12Server.py)
/// reads one `recv(1024)`, prints it and closes without an answer. Chromium,
/// which cannot tell whether such a GET was served, sends it again on a new
/// connection before it gives up, and shows no page.
#[test]
fn chromium_resends_a_get_that_the_seeds_server_never_answers() {
    common::require!("python3");
    let Some(browser) = Chromium::new() else {
        return;
    };
    let origin = common::origin();
    let port = common::free_tcp_port().to_string();
    let mut seed = Reaped(
        Command::new("python3")
            .args(["-u", "tests/classic/P12Server.py", &port])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start P12Server.py"),
    );
    let mut stdout = BufReader::new(seed.0.stdout.take().expect("piped"));
    let mut ready = String::new();
    stdout.read_line(&mut ready).expect("its first line");
    assert_eq!(
        ready.trim_end(),
        format!("Server listening on 127.0.0.1 : {port}")
    );
    // Its prints, as they come: the server takes the connections one by one,
    // so some arrive after the browser has given up.
    let (tx, printed) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let url = format!("http://{}/page", origin.addr);
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let load = browser.load(&url, Some(proxy));
    let asked = format!("Client received message: GET {url} HTTP/1.1");
    let deadline = Instant::now() + WAIT;
    let mut times = 0;
    while times < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match printed.recv_timeout(left) {
            Ok(line) if line == asked => times += 1,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    drop(seed);
    assert_eq!(times, 2, "the page was not asked for twice: {load:?}");
    assert_eq!(load.title(), None, "a page was shown: {load:?}");
    assert!(
        load.stderr.contains("ERR_EMPTY_RESPONSE"),
        "{}",
        load.stderr
    );
}
