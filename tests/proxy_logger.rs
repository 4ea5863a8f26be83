//! proxy_logger against real clients: curl as a proxy client, raw TCP for
//! partial reads, pipelining and bad heads, and headless Chromium coming back
//! to a page it has cached.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::browser::Chromium;
use common::{Server, WAIT};
use socketlab::http::{BodyReader, ResponseHead};

const EXE: &str = env!("CARGO_BIN_EXE_proxy_logger");

fn start() -> Server {
    Server::start(EXE, &["--port", "0"])
}

/// One logged request: its first line (time, client, request number) and
/// the indented lines under it (the head, then what was answered).
#[derive(Debug)]
struct Entry {
    first: String,
    lines: Vec<String>,
}

impl Entry {
    fn request_line(&self) -> &str {
        self.lines.first().map_or("", String::as_str)
    }

    fn has_line(&self, line: &str) -> bool {
        self.lines.iter().any(|l| l == line)
    }

    fn verdict(&self) -> &str {
        self.lines.last().map_or("", String::as_str)
    }
}

/// The requests logged so far, grouped from the server's output lines.
fn entries(server: &Server) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for line in server.lines_so_far() {
        if let Some(indented) = line.strip_prefix("    ") {
            if let Some(entry) = entries.last_mut() {
                entry.lines.push(indented.to_string());
            }
        } else if line.ends_with(" on this connection):") {
            entries.push(Entry {
                first: line,
                lines: Vec::new(),
            });
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
        if Instant::now() > deadline {
            panic!("log not as expected within {WAIT:?}: {found:#?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `n` logged requests whose verdict line is complete.
fn wait_for_requests(server: &Server, n: usize) -> Vec<Entry> {
    wait_for_entries(server, |e| {
        e.len() >= n && e.iter().all(|e| e.verdict().contains("answered"))
    })
}

/// Runs curl with `args` through the proxy; returns (exit code, stdout, stderr).
fn curl(proxy: SocketAddr, args: &[&str]) -> common::Output {
    let proxy = proxy.to_string();
    let mut all = vec!["-sS", "--max-time", "10", "-x", proxy.as_str()];
    all.extend_from_slice(args);
    common::run("curl", &all, b"")
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.addr).expect("connect to proxy_logger");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream
}

/// Reads one response (head and body) off a connection.
fn read_response(reader: &mut BufReader<TcpStream>, method: &str) -> (ResponseHead, Vec<u8>) {
    let head = ResponseHead::read_from(reader).expect("a response head");
    let length = head.body_length(method).expect("a framed response");
    let mut body = Vec::new();
    BodyReader::new(&mut *reader, length)
        .read_to_end(&mut body)
        .expect("the response body");
    (head, body)
}

/// Sends `bytes` on a fresh connection, half-closes it, and returns
/// everything the server sent back before it closed.
fn exchange(server: &Server, bytes: &[u8]) -> Vec<u8> {
    let mut stream = connect(server);
    stream.write_all(bytes).expect("send");
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown(Write) sends FIN");
    let mut all = Vec::new();
    stream
        .read_to_end(&mut all)
        .expect("read until the server closes");
    all
}

fn status_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn help_shows_the_defaults() {
    let out = common::run(EXE, &["--help"], b"");
    assert_eq!(out.code(), Some(0));
    assert!(
        out.stdout.contains("[default: 127.0.0.1]"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("[default: 2000]"), "{}", out.stdout);
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
    let out = curl(
        proxy.addr,
        &["-H", "X-Lab: p12", "http://example.invalid/hello?x=1"],
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("proxy_logger logged this request"),
        "{}",
        out.stdout
    );
    let entries = wait_for_requests(&proxy, 1);
    let entry = &entries[0];
    assert!(
        entry.first.contains("127.0.0.1:"),
        "client address: {}",
        entry.first
    );
    assert!(entry.first.contains("request 1 "), "{}", entry.first);
    // Absolute form: the full URL in the request line (RFC 9112 §3.2.2).
    assert_eq!(
        entry.request_line(),
        "GET http://example.invalid/hello?x=1 HTTP/1.1"
    );
    assert!(entry.has_line("Host: example.invalid"), "{entry:#?}");
    assert!(entry.has_line("X-Lab: p12"), "{entry:#?}");
    assert_eq!(entry.verdict(), "answered 200 OK with a short note");
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
    assert_eq!(
        entries[0].verdict(),
        "conditional GET (If-None-Match): is the cached copy still good? answered 304 Not Modified"
    );
    assert!(entries[1].has_line("If-Modified-Since: Tue, 28 Jul 2020 09:20:49 GMT"));
    assert!(
        entries[1]
            .verdict()
            .starts_with("conditional GET (If-Modified-Since)")
    );
    assert!(
        entries[2]
            .verdict()
            .starts_with("conditional HEAD (If-None-Match)")
    );
    assert_eq!(entries[3].verdict(), "answered 200 OK with a short note");
    assert_eq!(entries[4].verdict(), "answered 200 OK with a short note");
}

#[test]
fn a_head_split_across_many_reads_is_read_whole() {
    let proxy = start();
    let mut stream = connect(&proxy);
    let head = b"GET http://example.invalid/split HTTP/1.1\r\nHost: example.invalid\r\nIf-Modified-Since: Tue, 28 Jul 2020 09:20:49 GMT\r\n\r\n";
    // Cut in the request line, inside a field name, between CR and LF, and
    // inside the empty line that ends the head.
    let cuts = [5, 30, 44, 45, 62, head.len() - 3, head.len() - 1];
    let mut from = 0;
    for &to in &cuts {
        stream.write_all(&head[from..to]).expect("send a piece");
        // A pause, so each piece leaves in a segment of its own and the
        // server's read() returns it alone (TCP_NODELAY is set).
        thread::sleep(Duration::from_millis(20));
        from = to;
    }
    // Nothing may come back before the head is complete.
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let mut byte = [0u8; 1];
    let early = stream.read(&mut byte);
    assert!(
        early.as_ref().is_err_and(socketlab::explain::is_timeout),
        "the server answered a partial head: {early:?}"
    );
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream
        .write_all(&head[from..])
        .expect("send the last piece");
    let mut reader = BufReader::new(stream);
    let (response, _) = read_response(&mut reader, "GET");
    assert_eq!(response.status, 304);
    let entries = wait_for_requests(&proxy, 1);
    assert_eq!(
        entries[0].request_line(),
        "GET http://example.invalid/split HTTP/1.1"
    );
    assert!(entries[0].has_line("If-Modified-Since: Tue, 28 Jul 2020 09:20:49 GMT"));
    assert!(entries[0].verdict().starts_with("conditional GET"));
}

#[test]
fn pipelined_requests_on_one_connection_are_answered_in_order() {
    let proxy = start();
    // One write, five requests; the bodies hold text that looks like a
    // request, which must be skipped as body, not logged as a request.
    let requests = concat!(
        "GET http://example.invalid/1 HTTP/1.1\r\nHost: example.invalid\r\nIf-None-Match: \"a\"\r\n\r\n",
        "POST http://example.invalid/2 HTTP/1.1\r\nHost: example.invalid\r\nContent-Length: 28\r\n\r\n",
        "GET /smuggled HTTP/1.1\r\n\r\n\r\n",
        "POST http://example.invalid/3 HTTP/1.1\r\nHost: example.invalid\r\nTransfer-Encoding: chunked\r\n\r\n",
        "5;ext=1\r\nGET /\r\n10\r\nsmuggled HTTP/1.\r\n0\r\nTrailer: x\r\n\r\n",
        "HEAD http://example.invalid/4 HTTP/1.1\r\nHost: example.invalid\r\n\r\n",
        "GET http://example.invalid/5 HTTP/1.1\r\nHost: example.invalid\r\nConnection: close\r\n\r\n",
    );
    let mut stream = connect(&proxy);
    stream.write_all(requests.as_bytes()).expect("send");
    let mut reader = BufReader::new(stream);
    let mut statuses = Vec::new();
    for method in ["GET", "POST", "POST", "HEAD", "GET"] {
        let (head, body) = read_response(&mut reader, method);
        if method == "HEAD" {
            assert!(body.is_empty(), "HEAD got a body");
        }
        statuses.push(head.status);
    }
    assert_eq!(statuses, [304, 200, 200, 200, 200]);
    let last = read_response_or_close(&mut reader);
    assert!(last, "the connection stays open after Connection: close");

    let entries = wait_for_requests(&proxy, 5);
    let lines: Vec<&str> = entries.iter().map(Entry::request_line).collect();
    assert_eq!(
        lines,
        [
            "GET http://example.invalid/1 HTTP/1.1",
            "POST http://example.invalid/2 HTTP/1.1",
            "POST http://example.invalid/3 HTTP/1.1",
            "HEAD http://example.invalid/4 HTTP/1.1",
            "GET http://example.invalid/5 HTTP/1.1",
        ]
    );
    for (i, entry) in entries.iter().enumerate() {
        assert!(
            entry
                .first
                .contains(&format!("(number {} on this connection)", i + 1)),
            "{entry:#?}"
        );
    }
    proxy.expect_line("connection closed after 5 requests");
    assert!(!proxy.lines_so_far().iter().any(|l| l.contains("/smuggled")));
}

/// True if the server closed the connection (read returns 0).
fn read_response_or_close(reader: &mut BufReader<TcpStream>) -> bool {
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).expect("read until close");
    rest.is_empty()
}

#[test]
fn an_http_1_0_request_is_answered_and_the_connection_closed() {
    let proxy = start();
    let mut stream = connect(&proxy);
    // HTTP/1.0 closes after each response unless the client asks for
    // keep-alive (RFC 9112 §9.3); no FIN is sent from this side.
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
        reply
            .ends_with("proxy_logger logged this request; it fetches nothing (see its terminal)\n")
    );
}

#[test]
fn expect_100_continue_gets_its_interim_response_before_the_body() {
    let proxy = start();
    let mut stream = connect(&proxy);
    stream
        .write_all(b"PUT http://example.invalid/up HTTP/1.1\r\nHost: example.invalid\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .expect("send the head");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let interim = ResponseHead::read_from(&mut reader).expect("an interim response");
    assert_eq!(interim.status, 100);
    stream.write_all(b"hello").expect("send the body");
    let (response, _) = read_response(&mut reader, "PUT");
    assert_eq!(response.status, 200);
}

#[test]
fn connect_is_logged_and_refused_with_501() {
    if !common::have_tool("curl") {
        return;
    }
    let proxy = start();
    // -p: tunnel through the proxy with CONNECT even for http://.
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
        "CONNECT: asks for a tunnel to example.invalid:443 (for HTTPS); answered 501 Not Implemented"
    );
    // The proxy still serves.
    let again = curl(proxy.addr, &["http://example.invalid/"]);
    assert_eq!(again.code(), Some(0), "{}", again.stderr);
}

#[test]
fn bad_heads_get_400_or_431_and_the_proxy_keeps_serving() {
    let mut proxy = start();
    let many_fields: String = (0..101).map(|i| format!("X-{i}: {i}\r\n")).collect();
    let huge_field = format!("X-Big: {}\r\n", "a".repeat(70 * 1024));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not HTTP", b"HELLO THERE\r\n\r\n".to_vec(), "HTTP/1.1 400 Bad Request"),
        (
            "a space in the target",
            b"GET http://a b/ HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "over 100 fields",
            format!("GET http://a/ HTTP/1.1\r\n{many_fields}\r\n").into_bytes(),
            "HTTP/1.1 431 Request Header Fields Too Large",
        ),
        (
            "a 70 KiB head",
            format!("GET http://a/ HTTP/1.1\r\n{huge_field}\r\n").into_bytes(),
            "HTTP/1.1 431 Request Header Fields Too Large",
        ),
        (
            "Content-Length with Transfer-Encoding",
            b"POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "two different Content-Lengths",
            b"POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".to_vec(),
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "a terminal escape in a field value",
            b"GET http://a/ HTTP/1.1\r\nX-Esc: \x1b[31mred\r\n\r\n".to_vec(),
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "a head cut off by FIN",
            b"GET http://a/ HTTP/1.1\r\nHost: a\r\n".to_vec(),
            "HTTP/1.1 400 Bad Request",
        ),
    ];
    for (name, bytes, expected) in &cases {
        let reply = exchange(&proxy, bytes);
        assert_eq!(status_line(&reply), *expected, "{name}");
        assert!(
            String::from_utf8_lossy(&reply).contains("Connection: close"),
            "{name}"
        );
    }
    // A tab and a byte that is not UTF-8 (both allowed in a field value)
    // are shown escaped in the log.
    let reply = exchange(
        &proxy,
        b"GET http://a/esc HTTP/1.1\r\nHost: a\r\nX-Esc: red\tbold\xff\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_line(&reply), "HTTP/1.1 200 OK");
    // The reply can arrive before the fixture has read the log line that
    // was printed ahead of it: wait for the last request's entry, which
    // comes after all the others.
    let entries = wait_for_entries(&proxy, |entries| {
        entries
            .iter()
            .any(|e| e.request_line().contains("/esc") && e.verdict().contains("answered"))
    });
    let unframed: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.verdict().starts_with("cannot tell where the body ends"))
        .collect();
    assert_eq!(unframed.len(), 2, "{entries:#?}");
    assert!(
        unframed
            .iter()
            .all(|e| e.verdict().ends_with("answered 400 Bad Request"))
    );
    let escaped = entries
        .iter()
        .find(|e| e.request_line().contains("/esc"))
        .expect("logged");
    assert!(
        escaped.has_line("X-Esc: red\\tbold\u{fffd}"),
        "{escaped:#?}"
    );
    // And it still serves a good request on a kept-alive connection.
    let mut reader = BufReader::new(connect(&proxy));
    reader
        .get_mut()
        .write_all(b"GET http://a/ok HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut reader, "GET").0.status, 200);
    assert!(proxy.is_running());
}

#[test]
fn ctrl_c_prints_the_counts() {
    let proxy = start();
    for request in [
        "GET http://a/1 HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"x\"\r\nConnection: close\r\n\r\n",
        "GET http://a/2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "HEAD http://a/3 HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: Tue, 28 Jul 2020 09:20:49 GMT\r\nConnection: close\r\n\r\n",
    ] {
        assert!(status_line(&exchange(&proxy, request.as_bytes())).starts_with("HTTP/1.1 "));
    }
    interrupt_and_expect(proxy, "stopped: 3 requests, 2 of them conditional");
}

#[test]
fn quiet_logs_nothing_but_the_summary() {
    let proxy = Server::start(EXE, &["--port", "0", "--quiet"]);
    let reply = exchange(
        &proxy,
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

/// A GET on a plain connection, for the test origin's /__stats.
fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the origin");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut reader = BufReader::new(stream);
    let (head, body) = read_response(&mut reader, "GET");
    assert_eq!(head.status, 200, "{path}");
    String::from_utf8_lossy(&body).into_owned()
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
        entries.iter().filter(|e| is_page(e)).count() >= 2
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
            "conditional GET (If-None-Match, If-Modified-Since): is the cached copy still good? answered 304 Not Modified"
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
