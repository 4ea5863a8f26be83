//! web_proxy against a real origin (tests/peers/origin.py) with curl as the
//! client, and raw TCP where curl would not send the bytes we need
//! (smuggling, pipelining, oversized heads).

mod common;
/// web_proxy's HTTP module, compiled into this test to read responses.
#[path = "../src/bin/web_proxy/http/mod.rs"]
#[allow(dead_code, unused_imports)]
mod http;

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::thread;

use common::{Output, Server, WAIT};
use http::{BodyReader, ResponseHead};

const PROXY: &str = env!("CARGO_BIN_EXE_web_proxy");

fn proxy(extra: &[&str]) -> Server {
    let mut args = vec!["--port", "0"];
    args.extend_from_slice(extra);
    Server::start(PROXY, &args)
}

/// Runs curl through the proxy; `-s -S` keeps errors but not the meter.
fn curl(proxy: &Server, args: &[&str]) -> Output {
    let via = proxy.addr.to_string();
    let mut all = vec!["-s", "-S", "--max-time", "10", "-x", &via];
    all.extend_from_slice(args);
    common::run("curl", &all, b"")
}

/// Status code and headers from `curl -D -` output.
fn head_of(out: &Output) -> String {
    let text = &out.stdout;
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// How many requests the origin received for `path` (its /__stats).
fn origin_hits(origin: &Server, path: &str) -> u64 {
    let out = common::run(
        "curl",
        &[
            "-s",
            "--noproxy",
            "*",
            &format!("http://{}/__stats", origin.addr),
        ],
        b"",
    );
    let key = format!("\"{path}\": ");
    match out.stdout.find(&key) {
        Some(at) => out.stdout[at + key.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .expect("a count"),
        None => 0,
    }
}

/// Sends raw bytes to the proxy and reads until it closes the connection.
fn raw(proxy: &Server, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(proxy.addr).expect("connect to the proxy");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.write_all(request).expect("send");
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

fn status_of(reply: &str) -> &str {
    reply.split(' ').nth(1).unwrap_or_default()
}

fn still_serves(proxy: &Server, origin: &Server) {
    let out = curl(
        proxy,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{}/bytes/10", origin.addr),
        ],
    );
    assert_eq!(
        out.stdout, "200",
        "the proxy stopped serving: {}",
        out.stderr
    );
}

fn url(origin: &Server, path: &str) -> String {
    format!("http://{}{path}", origin.addr)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("web_proxy-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

// ---------------------------------------------------------------------------
// Forwarding and framing
// ---------------------------------------------------------------------------

#[test]
fn bodies_arrive_byte_exact_whatever_their_framing() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&["--no-cache"]);
    for path in ["/bytes/1048576", "/chunked/1048576", "/close/1048576"] {
        let out = curl(&proxy, &[&url(&origin, path)]);
        assert_eq!(out.code(), Some(0), "{path}: {}", out.stderr);
        assert!(
            out.stdout_bytes == common::origin_pattern(1 << 20),
            "{path}: body differs ({} bytes)",
            out.stdout_bytes.len()
        );
    }
}

#[test]
fn chunked_and_close_delimited_responses_are_reframed_for_the_client() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&["--no-cache"]);
    for path in ["/chunked/1000", "/close/1000"] {
        let out = curl(&proxy, &["-D", "-", "-o", "/dev/null", &url(&origin, path)]);
        let head = head_of(&out);
        assert_eq!(
            header(&head, "Transfer-Encoding"),
            Some("chunked"),
            "{path}: {head}"
        );
        // Trailer (listed by the chunked origin) is hop-by-hop.
        assert_eq!(header(&head, "Trailer"), None, "{path}: {head}");
        assert_eq!(
            header(&head, "Connection"),
            None,
            "{path}: an HTTP/1.1 client stays connected"
        );
    }
    // An HTTP/1.0 client cannot take chunked: it gets the body until close.
    let out = curl(&proxy, &["-0", "-D", "-", &url(&origin, "/chunked/1000")]);
    assert_eq!(header(&head_of(&out), "Transfer-Encoding"), None);
    assert!(out.stdout_bytes.ends_with(&common::origin_pattern(1000)));
}

#[test]
fn post_bodies_are_forwarded_byte_exact_with_either_framing() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&[]);
    let dir = temp_dir("post");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("body");
    std::fs::write(&file, common::origin_pattern(1 << 20)).expect("write body");
    let sum = common::run("sha256sum", &[file.to_str().expect("utf-8 path")], b"");
    let sha = sum
        .stdout
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_string();
    let data = format!("@{}", file.display());
    for extra in [&[][..], &["-H", "Transfer-Encoding: chunked"][..]] {
        let mut args = vec!["-D", "-", "-o", "/dev/null", "--data-binary", &data];
        args.extend_from_slice(extra);
        let target = url(&origin, "/echo");
        args.push(&target);
        let head = head_of(&curl(&proxy, &args));
        assert_eq!(
            header(&head, "X-Body-Length"),
            Some("1048576"),
            "{extra:?}: {head}"
        );
        assert_eq!(
            header(&head, "X-Body-Sha256"),
            Some(sha.as_str()),
            "{extra:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn head_requests_and_bodiless_statuses_have_no_body() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&[]);
    let out = curl(&proxy, &["-I", &url(&origin, "/bytes/5000")]);
    assert_eq!(
        header(&out.stdout, "Content-Length"),
        Some("5000"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.ends_with("\r\n\r\n"),
        "no body after a HEAD response"
    );
    for code in ["204", "304"] {
        let out = curl(
            &proxy,
            &[
                "-D",
                "-",
                "-w",
                "[%{http_code}]",
                &url(&origin, &format!("/status/{code}")),
            ],
        );
        assert!(
            out.stdout.ends_with(&format!("\r\n\r\n[{code}]")),
            "{code}: {:?}",
            out.stdout
        );
    }
}

#[test]
fn the_origin_sees_origin_form_and_no_hop_by_hop_fields() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&["--no-cache"]);
    let out = curl(
        &proxy,
        &[
            "-D",
            "-",
            "-H",
            "Connection: X-Secret",
            "-H",
            "X-Secret: private",
            "-H",
            "Keep-Alive: timeout=5",
            "-H",
            "TE: trailers",
            "-H",
            "Proxy-Authorization: Basic dTpw",
            "-H",
            "X-End-To-End: yes",
            &url(&origin, "/echo"),
        ],
    );
    let seen = out
        .stdout
        .split("\r\n\r\n")
        .nth(1)
        .expect("echo body")
        .to_ascii_lowercase();
    assert!(seen.starts_with("get /echo http/1.1\r\n"), "{seen}");
    assert!(seen.contains(&format!("host: {}", origin.addr)), "{seen}");
    assert!(seen.contains("x-end-to-end: yes"), "{seen}");
    for gone in [
        "x-secret",
        "keep-alive",
        "te:",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(!seen.contains(gone), "{gone} was forwarded: {seen}");
    }
    assert!(
        seen.contains(&format!("via: 1.1 {} (web_proxy)", proxy.addr)),
        "{seen}"
    );
    let head = head_of(&out);
    assert_eq!(
        header(&head, "Via"),
        Some(format!("1.1 {} (web_proxy)", proxy.addr).as_str())
    );
}

#[test]
fn several_requests_share_one_client_connection() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&[]);
    let first = url(&origin, "/bytes/100");
    let second = url(&origin, "/chunked/100");
    let out = curl(
        &proxy,
        &["-v", "-o", "/dev/null", "-o", "/dev/null", &first, &second],
    );
    assert!(
        out.stderr.contains("Re-using existing connection")
            || out.stderr.contains("Reusing existing"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.matches("Connected to").count(),
        1,
        "{}",
        out.stderr
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let origin = common::origin();
    let proxy = proxy(&["--no-cache"]);
    let mut requests = Vec::new();
    for path in ["/bytes/3", "/chunked/5", "/echo", "/bytes/7"] {
        requests.extend_from_slice(
            format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", url(&origin, path)).as_bytes(),
        );
    }
    let mut stream = TcpStream::connect(proxy.addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    // All four requests in one write, before any answer.
    stream.write_all(&requests).expect("send");
    let mut reader = BufReader::new(stream);
    let mut lengths = Vec::new();
    for _ in 0..4 {
        let head = ResponseHead::read_from(&mut reader).expect("a response head");
        assert_eq!(head.status, 200);
        let mut body = Vec::new();
        BodyReader::new(&mut reader, head.body_length("GET").expect("framing"))
            .read_to_end(&mut body)
            .expect("body");
        lengths.push(body.len());
    }
    assert_eq!(lengths[0], 3);
    assert_eq!(lengths[1], 5);
    assert_eq!(lengths[3], 7);
}

#[test]
fn the_access_log_has_one_line_per_transaction() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&[]);
    let target = url(&origin, "/bytes/123");
    curl(&proxy, &["-o", "/dev/null", &target]);
    let line = proxy.expect_line(&format!("GET {target}"));
    // time, elapsed, client, status, bytes, method, URL (squid's order)
    let fields: Vec<&str> = line.split(' ').collect();
    assert!(fields[1].ends_with("ms"), "elapsed second: {line}");
    assert!(fields[2].starts_with("127.0.0.1:"), "client third: {line}");
    assert_eq!(
        &fields[3..],
        ["MISS/200", "123", "GET", target.as_str()],
        "{line}"
    );
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[test]
fn bad_requests_get_4xx_and_5xx_and_the_proxy_keeps_serving() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&[]);
    let big = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        url(&origin, "/"),
        "a".repeat(70 * 1024)
    );
    let many = format!(
        "GET {} HTTP/1.1\r\n{}\r\n",
        url(&origin, "/"),
        "X-Field: 1\r\n".repeat(101)
    );
    let target = url(&origin, "/echo");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "origin-form target",
            "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            "400",
        ),
        (
            "https scheme",
            "GET https://example.org/ HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            "501",
        ),
        (
            "ftp scheme",
            "GET ftp://example.org/ HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            "501",
        ),
        ("not HTTP", "HELLO THERE\r\n\r\n".into(), "400"),
        (
            "Content-Length with Transfer-Encoding",
            format!(
                "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            "400",
        ),
        (
            "conflicting Content-Length",
            format!(
                "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"
            ),
            "400",
        ),
        (
            "Transfer-Encoding not ending in chunked",
            format!("POST {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
            "400",
        ),
        ("head over 64 KiB", big, "431"),
        ("101 header fields", many, "431"),
    ];
    for (what, request, expected) in &cases {
        let reply = raw(&proxy, request.as_bytes());
        assert_eq!(status_of(&reply), *expected, "{what}: {reply:?}");
        assert!(reply.contains("Connection: close"), "{what}");
        assert!(
            !reply.contains("X-Big") && !reply.contains("example.org"),
            "{what}: the reply echoes the request"
        );
    }
    still_serves(&proxy, &origin);
}

#[test]
fn origins_that_refuse_do_not_resolve_or_stay_silent_get_502_and_504() {
    common::require!("curl");
    let origin = common::origin();
    // Long enough for the origin to answer /bytes/10 on a loaded machine
    // (still_serves below); /hang never answers, so it gets 504 after this.
    let proxy = proxy(&["--origin-timeout", "2s"]);
    let refused = format!("http://127.0.0.1:{}/", common::free_tcp_port());
    for (target, expected) in [
        (refused.as_str(), "502"),
        ("http://no-such-host.invalid/", "502"),
    ] {
        let out = curl(&proxy, &["-o", "/dev/null", "-w", "%{http_code}", target]);
        assert_eq!(out.stdout, expected, "{target}");
    }
    let out = curl(
        &proxy,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url(&origin, "/hang"),
        ],
    );
    assert_eq!(out.stdout, "504");
    still_serves(&proxy, &origin);
}

/// A one-connection origin that answers any request with `response`.
fn raw_origin(response: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind raw origin");
    let addr = listener.local_addr().expect("raw origin address");
    thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(response);
        }
    });
    addr
}

/// An origin that answers its Nth connection's request with `responses[N]`.
fn raw_origin_sequence(responses: Vec<&'static [u8]>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind raw origin");
    let addr = listener.local_addr().expect("raw origin address");
    thread::spawn(move || {
        for response in responses {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(response);
        }
    });
    addr
}

#[test]
fn origins_with_ambiguous_or_broken_responses_get_502() {
    common::require!("curl");
    let proxy = proxy(&[]);
    for (what, response) in [
        (
            "length and chunked",
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                [..],
        ),
        (
            "conflicting lengths",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        ),
        ("not HTTP", b"SSH-2.0-OpenSSH_9.2\r\n\r\n"),
        ("nothing at all", b""),
    ] {
        let origin = raw_origin(response);
        let out = curl(
            &proxy,
            &[
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("http://{origin}/"),
            ],
        );
        assert_eq!(out.stdout, "502", "{what}");
    }
}

#[test]
fn loops_are_refused() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&[]);
    let to_itself = format!("http://{}/", proxy.addr);
    let out = curl(
        &proxy,
        &["-o", "/dev/null", "-w", "%{http_code}", &to_itself],
    );
    assert_eq!(out.stdout, "508", "a request to the proxy itself");
    let our_via = format!("Via: 1.1 {} (web_proxy)", proxy.addr);
    let out = curl(
        &proxy,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            &our_via,
            &url(&origin, "/echo"),
        ],
    );
    assert_eq!(out.stdout, "508", "a request carrying our Via");
    let other_via = "Via: 1.1 other-proxy";
    let out = curl(
        &proxy,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            other_via,
            &url(&origin, "/echo"),
        ],
    );
    assert_eq!(out.stdout, "200", "another proxy's Via is fine");
    still_serves(&proxy, &origin);
}

#[test]
fn clients_outside_allow_get_403() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&["--allow", "10.0.0.0/8"]);
    let out = curl(
        &proxy,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url(&origin, "/bytes/1"),
        ],
    );
    assert_eq!(out.stdout, "403");
    proxy.expect_line(&format!("NONE/403 75 GET {}", url(&origin, "/bytes/1")));
    assert_eq!(origin_hits(&origin, "/bytes/1"), 0);
    let bad = common::run(PROXY, &["--allow", "10.0.0.0/33"], b"");
    assert_eq!(bad.code(), Some(2), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("invalid CIDR '10.0.0.0/33'"),
        "{}",
        bad.stderr
    );
}

#[test]
fn clients_over_max_clients_get_503() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&["--max-clients", "1"]);
    // The first client holds the only slot with a kept-alive connection.
    let mut first = TcpStream::connect(proxy.addr).expect("connect");
    first.set_read_timeout(Some(WAIT)).expect("timeout");
    first
        .write_all(
            format!(
                "GET {} HTTP/1.1\r\nHost: x\r\n\r\n",
                url(&origin, "/bytes/2")
            )
            .as_bytes(),
        )
        .expect("send");
    let mut reader = BufReader::new(first.try_clone().expect("clone"));
    assert_eq!(
        ResponseHead::read_from(&mut reader)
            .expect("response")
            .status,
        200
    );
    let out = curl(
        &proxy,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url(&origin, "/bytes/1"),
        ],
    );
    assert_eq!(out.stdout, "503");
    drop(reader);
    first.shutdown(Shutdown::Both).expect("close");
    drop(first);
    // The slot comes back once the first client has gone (bounded retries:
    // the proxy notices the close a moment later).
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let out = curl(
            &proxy,
            &[
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &url(&origin, "/bytes/1"),
            ],
        );
        if out.stdout == "200" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slot never came back"
        );
        thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn idle_client_connections_are_closed() {
    let proxy = proxy(&["--idle-timeout", "200ms"]);
    let mut stream = TcpStream::connect(proxy.addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buf = [0u8; 16];
    // read() returns 0 (FIN) once the proxy gives up on the idle connection.
    assert_eq!(
        stream.read(&mut buf).expect("the proxy closes, no timeout"),
        0
    );
}

#[test]
fn an_origin_that_vanishes_mid_body_ends_only_that_transaction() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&[]);
    for _ in 0..2 {
        let out = curl(
            &proxy,
            &[
                "-o",
                "/dev/null",
                &url(&origin, "/truncated-cacheable/100000"),
            ],
        );
        // curl: (18) transfer closed with outstanding read data remaining
        assert_eq!(out.code(), Some(18), "{}", out.stderr);
    }
    assert_eq!(
        origin_hits(&origin, "/truncated-cacheable/100000"),
        2,
        "an incomplete response was cached"
    );
    still_serves(&proxy, &origin);
}

#[test]
fn a_client_that_vanishes_mid_body_ends_only_its_transaction() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&[]);
    let mut stream = TcpStream::connect(proxy.addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\n\r\n",
        url(&origin, "/chunked/4000000")
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut first = [0u8; 1000];
    stream
        .read_exact(&mut first)
        .expect("the start of the response");
    drop(stream);
    proxy.expect_line("/chunked/4000000");
    still_serves(&proxy, &origin);
}

#[test]
fn an_http_1_0_client_that_asks_for_keep_alive_gets_it() {
    let origin = common::origin();
    let proxy = proxy(&[]);
    let mut stream = TcpStream::connect(proxy.addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    for n in [3, 4] {
        let request = format!(
            "GET {} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            url(&origin, &format!("/bytes/{n}"))
        );
        stream
            .write_all(request.as_bytes())
            .expect("send on the same connection");
        let head = ResponseHead::read_from(&mut reader).expect("a response");
        assert_eq!(
            head.headers.get_str("Connection"),
            Some("keep-alive"),
            "{head:?}"
        );
        let mut body = Vec::new();
        BodyReader::new(&mut reader, head.body_length("GET").expect("framing"))
            .read_to_end(&mut body)
            .expect("body");
        assert_eq!(body, common::origin_pattern(n));
    }
}

// ---------------------------------------------------------------------------
// The cache
// ---------------------------------------------------------------------------

fn cache_status(proxy: &Server, target: &str, extra: &[&str]) -> String {
    let mut args = vec!["-D", "-", "-o", "/dev/null"];
    args.extend_from_slice(extra);
    args.push(target);
    let head = head_of(&curl(proxy, &args));
    header(&head, "Cache-Status").unwrap_or("none").to_string()
}

#[test]
fn a_fresh_response_is_served_from_the_cache_with_age() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&[]);
    let target = url(&origin, "/cache?cc=max-age%3D60&body=fresh");
    assert!(cache_status(&proxy, &target, &[]).contains("fwd=uri-miss; fwd-status=200; stored"));
    let out = curl(&proxy, &["-D", "-", &target]);
    let head = head_of(&out);
    assert!(
        header(&head, "Cache-Status").is_some_and(|s| s.starts_with("web_proxy; hit")),
        "{head}"
    );
    assert!(header(&head, "Age").is_some(), "{head}");
    assert!(out.stdout.ends_with("\r\n\r\nfresh"), "{}", out.stdout);
    assert_eq!(origin_hits(&origin, "/cache"), 1);
    proxy.expect_line("HIT/200 5 GET");
}

#[test]
fn no_store_private_and_vary_star_are_never_cached() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&[]);
    for (query, why) in [
        ("cc=no-store%2C%20max-age%3D60", "no-store"),
        ("cc=private%2C%20max-age%3D60", "private"),
        ("cc=max-age%3D60&vary=*", "vary *"),
    ] {
        let target = url(&origin, &format!("/cache?{query}"));
        for _ in 0..2 {
            let status = cache_status(&proxy, &target, &[]);
            assert!(
                status.contains(&format!("detail=\"{why}\"")),
                "{query}: {status}"
            );
        }
    }
    assert_eq!(origin_hits(&origin, "/cache"), 6);
}

#[test]
fn authorized_requests_are_cached_only_when_the_response_allows() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&[]);
    let private = url(&origin, "/cache?cc=max-age%3D60&body=a");
    let public = url(&origin, "/cache?cc=public%2C%20max-age%3D60&body=b");
    for target in [&private, &private, &public, &public] {
        cache_status(&proxy, target, &["-H", "Authorization: Basic dTpw"]);
    }
    assert_eq!(
        origin_hits(&origin, "/cache"),
        3,
        "only the public answer was reused"
    );
}

#[test]
fn stale_entries_are_revalidated_with_etag_and_last_modified() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&[]);
    for query in ["cc=no-cache&etag=%22v1%22", "cc=max-age%3D0&lm=1"] {
        let target = url(&origin, &format!("/cache?{query}&body=stored"));
        assert!(cache_status(&proxy, &target, &[]).contains("stored"));
        let out = curl(&proxy, &["-D", "-", &target]);
        let status = header(&head_of(&out), "Cache-Status")
            .unwrap_or_default()
            .to_string();
        assert!(
            status.contains("fwd=stale; fwd-status=304"),
            "{query}: {status}"
        );
        assert!(
            out.stdout.ends_with("\r\n\r\nstored"),
            "{query}: the cached body is served"
        );
    }
    proxy.expect_line("REVALIDATED/200 6 GET");
    assert_eq!(
        origin_hits(&origin, "/cache"),
        4,
        "each revalidation asked the origin"
    );
}

#[test]
fn a_stale_response_is_served_when_the_origin_hangs_up_unless_forbidden() {
    // RFC 9111 §4.2.4: cut off from the origin, a cache may serve a stale
    // stored response, unless must-revalidate, proxy-revalidate, s-maxage
    // or no-cache forbid it. Each response is stale on arrival (max-age=1,
    // Age: 100) so it is stored but may not be used without the origin; on
    // the next request the origin reads the request and hangs up.
    common::require!("curl");
    let proxy = proxy(&[]);
    for (what, stored, served) in [
        (
            "plain max-age",
            &b"HTTP/1.1 200 OK\r\nCache-Control: max-age=1\r\nAge: 100\r\nContent-Length: 6\r\n\r\nstored"[..],
            true,
        ),
        (
            "must-revalidate",
            b"HTTP/1.1 200 OK\r\nCache-Control: max-age=1, must-revalidate\r\nAge: 100\r\nContent-Length: 6\r\n\r\nstored",
            false,
        ),
        (
            "proxy-revalidate",
            b"HTTP/1.1 200 OK\r\nCache-Control: max-age=1, proxy-revalidate\r\nAge: 100\r\nContent-Length: 6\r\n\r\nstored",
            false,
        ),
        (
            "s-maxage",
            b"HTTP/1.1 200 OK\r\nCache-Control: s-maxage=1\r\nAge: 100\r\nContent-Length: 6\r\n\r\nstored",
            false,
        ),
    ] {
        let origin = raw_origin_sequence(vec![stored, b""]);
        let target = format!("http://{origin}/stale");
        assert!(cache_status(&proxy, &target, &[]).contains("stored"), "{what}");
        let out = curl(&proxy, &["-D", "-", &target]);
        let head = head_of(&out);
        if served {
            assert!(head.starts_with("HTTP/1.1 200"), "{what}: {head}");
            assert!(out.stdout.ends_with("\r\n\r\nstored"), "{what}: {}", out.stdout);
            let status = header(&head, "Cache-Status").unwrap_or_default();
            assert!(status.contains("fwd=stale; fwd-status=502"), "{what}: {status}");
        } else {
            assert!(head.starts_with("HTTP/1.1 502"), "{what}: {head}");
        }
    }
    proxy.expect_line("STALE/200 6 GET");
}

#[test]
fn within_stale_while_revalidate_the_stale_response_answers_then_is_replaced() {
    // RFC 5861 §3. The first response is stale on arrival (max-age=1,
    // Age: 2) but within its stale-while-revalidate=600; the next request
    // gets it at once, then the proxy fetches the new one from the origin
    // (its second connection), and the request after that is a fresh hit.
    // Before stale-while-revalidate, the second request waited for "new".
    common::require!("curl");
    let proxy = proxy(&[]);
    let origin = raw_origin_sequence(vec![
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=1, stale-while-revalidate=600\r\nAge: 2\r\nContent-Length: 3\r\n\r\nold",
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: 3\r\n\r\nnew",
    ]);
    let target = format!("http://{origin}/swr");
    assert!(cache_status(&proxy, &target, &[]).contains("stored"));
    let out = curl(&proxy, &["-D", "-", &target]);
    let status = header(&head_of(&out), "Cache-Status")
        .unwrap_or_default()
        .to_string();
    assert!(out.stdout.ends_with("\r\n\r\nold"), "{}", out.stdout);
    assert!(
        status.contains("hit; ttl=-") && status.contains("stale-while-revalidate"),
        "{status}"
    );
    // The access log line comes once the revalidation is done and stored.
    proxy.expect_line("STALE/200 3 GET");
    let out = curl(&proxy, &["-D", "-", &target]);
    assert!(out.stdout.ends_with("\r\n\r\nnew"), "{}", out.stdout);
    let status = header(&head_of(&out), "Cache-Status")
        .unwrap_or_default()
        .to_string();
    assert!(status.contains("hit; ttl="), "{status}");
}

#[test]
fn a_clients_no_cache_or_max_age_0_forces_revalidation() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&[]);
    let target = url(&origin, "/cache?cc=max-age%3D60&etag=%22v1%22");
    cache_status(&proxy, &target, &[]);
    for forcing in [
        "Cache-Control: no-cache",
        "Cache-Control: max-age=0",
        "Pragma: no-cache",
    ] {
        let status = cache_status(&proxy, &target, &["-H", forcing]);
        assert!(
            status.contains("fwd=request; fwd-status=304"),
            "{forcing}: {status}"
        );
    }
    assert_eq!(origin_hits(&origin, "/cache"), 4);
}

#[test]
fn a_clients_matching_conditional_gets_304_from_the_cache() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&[]);
    let target = url(&origin, "/cache?cc=max-age%3D60&etag=%22v1%22&lm=1");
    cache_status(&proxy, &target, &[]);
    for conditional in [
        "If-None-Match: \"v1\"",
        "If-Modified-Since: Tue, 28 Jul 2020 09:20:49 GMT",
    ] {
        let out = curl(
            &proxy,
            &[
                "-D",
                "-",
                "-w",
                "[%{http_code}]",
                "-H",
                conditional,
                &target,
            ],
        );
        assert!(
            out.stdout.ends_with("\r\n\r\n[304]"),
            "{conditional}: {:?}",
            out.stdout
        );
        assert_eq!(header(&out.stdout, "ETag"), Some("\"v1\""));
    }
    let out = curl(
        &proxy,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "If-None-Match: \"v0\"",
            &target,
        ],
    );
    assert_eq!(out.stdout, "200", "a different tag gets the body");
    assert_eq!(origin_hits(&origin, "/cache"), 1);
}

#[test]
fn a_304_for_a_clients_conditional_is_passed_on_but_never_stored() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&[]);
    let target = url(&origin, "/cache?cc=max-age%3D60&etag=%22v1%22&body=full");
    let out = curl(
        &proxy,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "If-None-Match: \"v1\"",
            &target,
        ],
    );
    assert_eq!(out.stdout, "304", "the origin's own 304");
    let out = curl(&proxy, &["-w", "[%{http_code}]", &target]);
    assert_eq!(
        out.stdout, "full[200]",
        "a plain request gets the whole response"
    );
}

#[test]
fn a_304_from_revalidation_never_leaves_its_hop_by_hop_fields_in_the_cache() {
    common::require!("curl");
    let origin = raw_origin_sequence(vec![
        b"HTTP/1.1 200 OK\r\nETag: \"a\"\r\nCache-Control: no-cache\r\nContent-Length: 4\r\n\r\nbody",
        b"HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\nX-Refreshed: yes\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n\r\n",
    ]);
    let proxy = proxy(&[]);
    let target = format!("http://{origin}/");
    assert!(cache_status(&proxy, &target, &[]).contains("stored"));
    let out = curl(&proxy, &["-D", "-", &target]);
    let head = head_of(&out);
    assert!(
        header(&head, "Cache-Status").is_some_and(|s| s.contains("fwd=stale; fwd-status=304")),
        "{head}"
    );
    assert_eq!(header(&head, "X-Refreshed"), Some("yes"), "{head}");
    for hop_by_hop in ["Connection", "X-Hop", "Keep-Alive"] {
        assert_eq!(header(&head, hop_by_hop), None, "{hop_by_hop}: {head}");
    }
    assert!(out.stdout.ends_with("\r\n\r\nbody"), "{}", out.stdout);
}

#[test]
fn a_response_without_date_counts_its_expires_from_its_arrival() {
    common::require!("curl");
    // Expired years ago; without a Date, "Expires minus 1970" would make
    // it fresh for decades.
    let expired: &'static [u8] = b"HTTP/1.1 200 OK\r\nExpires: Thu, 01 Jan 2015 00:00:00 GMT\r\nContent-Length: 3\r\n\r\nold";
    let origin = raw_origin_sequence(vec![expired, expired]);
    let proxy = proxy(&[]);
    let target = format!("http://{origin}/");
    for _ in 0..2 {
        let out = curl(&proxy, &["-D", "-", &target]);
        let head = head_of(&out);
        assert!(
            header(&head, "Cache-Status").is_some_and(|s| s.contains("fwd=uri-miss")),
            "{head}"
        );
        assert!(header(&head, "Date").is_some(), "a Date is added: {head}");
    }
}

#[test]
fn a_get_with_a_body_is_forwarded_never_answered_from_the_cache() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&[]);
    let target = url(&origin, "/cache?cc=max-age%3D60");
    cache_status(&proxy, &target, &[]);
    assert!(cache_status(&proxy, &target, &[]).contains("hit"));
    // A hit would leave the body unread, and the proxy would take it for
    // the next request on the connection: a smuggled request.
    let smuggled = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", url(&origin, "/echo"));
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let mut stream = TcpStream::connect(proxy.addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    stream.shutdown(Shutdown::Write).expect("FIN");
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert_eq!(reply.matches("HTTP/1.1 200 ").count(), 1, "{reply}");
    assert!(!reply.contains("hit"), "served from the cache: {reply}");
    assert_eq!(origin_hits(&origin, "/echo"), 0, "{reply}");
    assert_eq!(origin_hits(&origin, "/cache"), 2, "{reply}");
}

#[test]
fn only_if_cached_never_reaches_the_origin() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&[]);
    let target = url(&origin, "/cache?cc=max-age%3D60");
    let only = ["-H", "Cache-Control: only-if-cached"];
    let code = |extra: &[&str]| {
        let mut args = vec!["-o", "/dev/null", "-w", "%{http_code}"];
        args.extend_from_slice(extra);
        args.push(&target);
        curl(&proxy, &args).stdout
    };
    assert_eq!(code(&only), "504", "nothing stored yet");
    assert_eq!(code(&[]), "200");
    assert_eq!(code(&only), "200", "now a hit");
    assert_eq!(origin_hits(&origin, "/cache"), 1);
}

#[test]
fn unsafe_methods_invalidate_the_url() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&[]);
    let target = url(&origin, "/cache?cc=max-age%3D60");
    cache_status(&proxy, &target, &[]);
    assert!(cache_status(&proxy, &target, &[]).contains("hit"));
    curl(&proxy, &["-o", "/dev/null", "-d", "x=1", &target]);
    assert!(
        cache_status(&proxy, &target, &[]).contains("fwd=uri-miss"),
        "the POST removed the entry"
    );
    assert_eq!(origin_hits(&origin, "/cache"), 3);
}

#[test]
fn vary_keeps_responses_for_different_request_fields_apart() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&[]);
    let target = url(&origin, "/cache?cc=max-age%3D60&vary=Accept-Language");
    cache_status(&proxy, &target, &["-H", "Accept-Language: en"]);
    assert!(cache_status(&proxy, &target, &["-H", "Accept-Language: en"]).contains("hit"));
    assert!(
        cache_status(&proxy, &target, &["-H", "Accept-Language: fr"]).contains("fwd=vary-miss")
    );
}

#[test]
fn no_cache_flag_forwards_everything() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&["--no-cache"]);
    let target = url(&origin, "/cache?cc=max-age%3D60");
    for _ in 0..2 {
        assert!(cache_status(&proxy, &target, &[]).contains("fwd=bypass"));
    }
    assert_eq!(origin_hits(&origin, "/cache"), 2);
}

#[test]
fn the_least_recently_used_entry_is_evicted() {
    common::require!("curl");
    let origin = common::origin();
    // An eighth of 80K: bodies up to 10 KiB are stored, about 8 of them fit.
    let proxy = proxy(&["--cache-size", "80K"]);
    let body = "x".repeat(9000);
    let target = |n: u32| {
        url(
            &origin,
            &format!("/cache?cc=max-age%3D60&n={n}&body={body}"),
        )
    };
    for n in 0..9 {
        assert!(
            cache_status(&proxy, &target(n), &[]).contains("stored"),
            "{n}"
        );
    }
    assert!(
        cache_status(&proxy, &target(0), &[]).contains("fwd=uri-miss"),
        "the first was evicted"
    );
    assert!(
        cache_status(&proxy, &target(8), &[]).contains("hit"),
        "the last stayed"
    );
}

#[test]
fn the_disk_cache_survives_a_restart() {
    common::require!("curl");
    let origin = common::origin();
    let dir = temp_dir("disk");
    let dir_arg = dir.to_str().expect("utf-8 path");
    let target = url(&origin, "/cache?cc=max-age%3D600&body=persisted");
    {
        let proxy = proxy(&["--cache-dir", dir_arg]);
        assert!(cache_status(&proxy, &target, &[]).contains("stored"));
    }
    let files: Vec<String> = std::fs::read_dir(&dir)
        .expect("cache dir")
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].ends_with(".entry") && !files[0].contains("cache"),
        "named by a hash: {files:?}"
    );
    let proxy = proxy(&["--cache-dir", dir_arg]);
    proxy.expect_line("cache: 1 entries loaded");
    let out = curl(&proxy, &["-D", "-", &target]);
    assert!(
        header(&head_of(&out), "Cache-Status").is_some_and(|s| s.contains("hit")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.ends_with("persisted"));
    assert_eq!(origin_hits(&origin, "/cache"), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// CONNECT tunnels
// ---------------------------------------------------------------------------

/// A one-connection TCP echo server: echoes until the client's FIN, then
/// sends its own FIN.
fn echo_once() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo");
    let addr = listener.local_addr().expect("echo address");
    thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut copy = stream.try_clone().expect("clone");
            let _ = std::io::copy(&mut stream, &mut copy);
            let _ = copy.shutdown(Shutdown::Write);
        }
    });
    addr
}

#[test]
fn connect_tunnels_pass_bytes_and_half_close_through() {
    let echo = echo_once();
    let port = echo.port().to_string();
    let proxy = proxy(&["--connect-ports", &format!("443,{port}")]);
    let mut stream = TcpStream::connect(proxy.addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    // The first tunnel bytes ride in the same segment as the CONNECT head.
    stream
        .write_all(format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n\r\nearly ").as_bytes())
        .expect("send");
    stream.write_all(b"bytes\x00\xff").expect("send");
    // Half-close: our FIN must reach the echo server, whose FIN must come back.
    stream.shutdown(Shutdown::Write).expect("shutdown");
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .expect("read until the tunnel's FIN");
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(reply.ends_with(b"\r\n\r\nearly bytes\x00\xff"), "{text}");
    // 13 bytes each way.
    proxy.expect_line(&format!("TUNNEL/200 26 CONNECT {echo}"));
}

#[test]
fn curl_fetches_through_a_tunnel_and_other_ports_are_refused() {
    common::require!("curl");
    let origin = common::origin();
    let proxy = proxy(&["--connect-ports", &origin.port().to_string()]);
    let out = curl(&proxy, &["-p", &url(&origin, "/bytes/70000")]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(out.stdout_bytes == common::origin_pattern(70000));
    let other = format!("http://127.0.0.1:{}/", common::free_tcp_port());
    let out = curl(&proxy, &["-p", "-v", "-o", "/dev/null", &other]);
    assert!(out.stderr.contains("403"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------
// A real browser
// ---------------------------------------------------------------------------

#[test]
fn chromium_loads_a_page_and_its_image_through_the_proxy() {
    let Some(browser) = common::browser::Chromium::new() else {
        return;
    };
    let origin = common::origin();
    let proxy = proxy(&[]);
    let load = browser.load(&url(&origin, "/imgcheck"), Some(proxy.addr));
    assert_eq!(load.title(), Some("image loaded"), "{load:?}");
    proxy.expect_line(&format!("GET {}", url(&origin, "/imgcheck")));
    proxy.expect_line(&format!("GET {}", url(&origin, "/image.png")));
}

#[test]
fn help_shows_every_default() {
    let out = common::run(PROXY, &["--help"], b"");
    for default in [
        "127.0.0.1",
        "8888",
        "127.0.0.0/8",
        "256",
        "32M",
        "443",
        "10s",
        "15s",
    ] {
        assert!(
            out.stdout.contains(&format!("[default: {default}"))
                || out.stdout.contains(&format!(", {default}")),
            "{default}: {}",
            out.stdout
        );
    }
}
