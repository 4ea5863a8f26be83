//! web_server against real clients: curl, http_get, Chromium headless, and
//! raw TCP for what no polite client sends (`..` in a path, `%2e%2e`,
//! garbage, a head sent too slowly, a silent connection).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Server, WAIT};

const EXE: &str = env!("CARGO_BIN_EXE_web_server");
const HTTP_GET: &str = env!("CARGO_BIN_EXE_http_get");

fn start(extra: &[&str]) -> Server {
    let mut args = vec!["--bind", "127.0.0.1", "--port", "0"];
    args.extend_from_slice(extra);
    Server::start(EXE, &args)
}

fn www(file: &str) -> Vec<u8> {
    std::fs::read(Path::new("www").join(file)).expect("a file of www/")
}

/// One response read off a connection: status code, head lines, body.
#[derive(Debug)]
struct Response {
    status: u16,
    head: Vec<String>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.head
            .iter()
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim())
    }
}

/// Reads one response whose body is Content-Length bytes (none for HEAD).
fn read_response(reader: &mut BufReader<TcpStream>, head_only: bool) -> Response {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a head line");
        assert!(!line.is_empty(), "the server closed mid-head: {head:?}");
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    let status = head[0]
        .split(' ')
        .nth(1)
        .expect("status")
        .parse()
        .expect("a code");
    let mut response = Response {
        status,
        head,
        body: Vec::new(),
    };
    let length: usize = response
        .header("Content-Length")
        .expect("every response has Content-Length")
        .parse()
        .expect("a length");
    if !head_only {
        response.body = vec![0; length];
        reader.read_exact(&mut response.body).expect("the body");
    }
    response
}

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(addr).expect("connect to web_server");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    BufReader::new(stream)
}

/// Sends `request` as raw bytes on a new connection and reads one response.
fn raw(addr: SocketAddr, request: &str) -> Response {
    let mut conn = connect(addr);
    conn.get_mut().write_all(request.as_bytes()).expect("send");
    read_response(&mut conn, request.starts_with("HEAD "))
}

fn get(addr: SocketAddr, target: &str) -> Response {
    raw(
        addr,
        &format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n"),
    )
}

/// True once the server has closed the connection (a read returns 0 or a reset).
fn closed(conn: &mut BufReader<TcpStream>) -> bool {
    let mut rest = Vec::new();
    match conn.read_to_end(&mut rest) {
        Ok(_) => rest.is_empty(),
        Err(err) => err.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn curl_gets_the_page_with_its_type_and_length_and_head_gets_no_body() {
    if !common::have_tool("curl") {
        return;
    }
    let server = start(&[]);
    let url = format!("http://{}/", server.addr);
    let out = Command::new("curl")
        .args(["-s", "-D", "-", &url])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("Content-Type: text/html; charset=utf-8\r\n"),
        "{text}"
    );
    let page = www("index.html");
    assert!(
        text.contains(&format!("Content-Length: {}\r\n", page.len())),
        "{text}"
    );
    assert!(
        out.stdout.ends_with(&page),
        "the body is index.html, byte for byte"
    );

    let url = format!("http://{}/socket.png", server.addr);
    let out = Command::new("curl")
        .args(["-s", "-I", &url])
        .output()
        .expect("curl -I");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Content-Type: image/png\r\n"), "{text}");
    assert!(
        text.contains(&format!("Content-Length: {}\r\n", www("socket.png").len())),
        "{text}"
    );
    assert!(
        text.ends_with("\r\n\r\n"),
        "HEAD: a head and no body: {text:?}"
    );
    server.expect_line("\"HEAD /socket.png HTTP/1.1\" -> 200 OK (0 body bytes)");
}

#[test]
fn http_get_saves_the_image_and_the_binary_file_byte_for_byte() {
    let server = start(&[]);
    let dir = std::env::temp_dir().join(format!("socketlab-web_server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for file in ["socket.png", "files/bytes.bin"] {
        let saved: PathBuf = dir.join(file.replace('/', "_"));
        let url = format!("http://{}/{file}", server.addr);
        let out = common::run(
            HTTP_GET,
            &[&url, "--output", saved.to_str().expect("utf-8")],
            b"",
        );
        assert_eq!(out.code(), Some(0), "{}", out.stderr);
        assert_eq!(std::fs::read(&saved).expect("saved"), www(file), "{file}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let bin = get(server.addr, "/files/bytes.bin");
    assert_eq!(bin.header("Content-Type"), Some("application/octet-stream"));
    assert_eq!(
        bin.body,
        (0..=255u8).cycle().take(1024).collect::<Vec<u8>>()
    );
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection_and_http10_closes() {
    let server = start(&[]);
    let mut conn = connect(server.addr);
    conn.get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /socket.png HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("two pipelined requests");
    let page = read_response(&mut conn, false);
    let image = read_response(&mut conn, false);
    assert_eq!((page.status, image.status), (200, 200));
    assert_eq!(page.header("Connection"), Some("keep-alive"));
    assert_eq!(image.body, www("socket.png"));
    let port = conn.get_ref().local_addr().expect("local").port();
    server.expect_line(&format!(
        "127.0.0.1:{port} \"GET /socket.png HTTP/1.1\" -> 200 OK"
    ));

    let mut old = connect(server.addr);
    old.get_mut()
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .expect("send");
    let response = read_response(&mut old, false);
    assert_eq!(response.header("Connection"), Some("close"));
    assert!(
        closed(&mut old),
        "HTTP/1.0 without keep-alive: closed after the response"
    );
}

#[test]
fn dot_dot_encoded_dots_and_absolute_paths_never_leave_the_root() {
    let server = start(&[]);
    // Each of these would read /etc/passwd from a server that joined the
    // path to the root as it came.
    for target in [
        "/../../../../etc/passwd",
        "/files/../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/..%2f..%2fetc/passwd",
        "/files/..",
    ] {
        let response = get(server.addr, target);
        assert_eq!(response.status, 403, "{target}: {response:?}");
        assert!(
            !String::from_utf8_lossy(&response.body).contains("root:"),
            "{target}"
        );
    }
    // Absolute and doubled paths stay under the root: no such file there.
    for target in ["//etc/passwd", "/./etc/passwd", "/etc/passwd"] {
        assert_eq!(get(server.addr, target).status, 404, "{target}");
    }
    // Not a path at all (absolute-form, a bad escape, a NUL): 400.
    for target in ["http://evil/etc/passwd", "/%zz", "/a%00b"] {
        assert_eq!(get(server.addr, target).status, 400, "{target}");
    }
}

// Unix only: on Windows a symlink needs Developer Mode or an administrator.
#[cfg(unix)]
#[test]
fn a_symlink_out_of_the_root_is_refused_and_one_inside_is_served() {
    let base =
        std::env::temp_dir().join(format!("socketlab-web_server-links-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("root");
    std::fs::create_dir_all(&root).expect("root");
    std::fs::write(base.join("secret.txt"), b"outside the root").expect("secret");
    std::fs::write(root.join("inside.txt"), b"inside").expect("inside");
    std::os::unix::fs::symlink(base.join("secret.txt"), root.join("leak.txt")).expect("symlink");
    std::os::unix::fs::symlink(&base, root.join("up")).expect("symlink to a folder");
    std::os::unix::fs::symlink(root.join("inside.txt"), root.join("alias.txt")).expect("symlink");
    let server = start(&["--root", root.to_str().expect("utf-8")]);
    for target in ["/leak.txt", "/up/secret.txt"] {
        let response = get(server.addr, target);
        assert_eq!(response.status, 403, "{target}");
        assert!(!String::from_utf8_lossy(&response.body).contains("outside the root"));
    }
    let alias = get(server.addr, "/alias.txt");
    assert_eq!((alias.status, alias.body.as_slice()), (200, &b"inside"[..]));
    assert_eq!(
        alias.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn errors_have_their_codes_and_a_small_html_page() {
    let server = start(&[]);
    let missing = get(server.addr, "/no-such-page.html");
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert!(String::from_utf8_lossy(&missing.body).contains("<h1>404 Not Found</h1>"));

    let post = raw(
        server.addr,
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(
        (post.status, post.header("Allow")),
        (405, Some("GET, HEAD"))
    );
    assert_eq!(
        raw(server.addr, "BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n").status,
        501
    );
    let folder = get(server.addr, "/files");
    assert_eq!(
        (folder.status, folder.header("Location")),
        (301, Some("/files/"))
    );
    assert!(String::from_utf8_lossy(&get(server.addr, "/files/").body).contains("bytes.bin"));
    // Malformed heads: not a request line, no Host in HTTP/1.1, a header
    // line with no colon, an unknown version, a line of 9000 bytes.
    let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    for bad in [
        "garbage\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n",
        "GET / HTTP/2.0\r\nHost: t\r\n\r\n",
        "GET  / HTTP/1.1\r\nHost: t\r\n\r\n",
        &long,
    ] {
        let mut conn = connect(server.addr);
        conn.get_mut().write_all(bad.as_bytes()).expect("send");
        let response = read_response(&mut conn, false);
        assert_eq!(response.status, 400, "{bad:?}");
        assert_eq!(response.header("Connection"), Some("close"), "{bad:?}");
    }
    // Still serving after all that.
    assert_eq!(get(server.addr, "/").status, 200);
}

#[test]
fn a_head_sent_too_slowly_gets_408_and_a_silent_connection_is_closed() {
    let server = start(&["--head-timeout", "300ms", "--idle", "300ms"]);
    // Slowloris: a request begun and never finished.
    let mut slow = connect(server.addr);
    slow.get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: 1")
        .expect("send");
    let response = read_response(&mut slow, false);
    assert_eq!(response.status, 408);
    assert!(closed(&mut slow), "closed after the 408");
    server.expect_line("-> 408 Request Timeout");
    // Connected, sent nothing: closed after --idle.
    let mut silent = connect(server.addr);
    assert!(closed(&mut silent), "a silent connection is closed");
    server.expect_line("closed: no new request for 300ms (--idle)");
}

#[test]
fn a_silent_client_does_not_hold_up_the_next_one() {
    let server = start(&[]);
    let _silent = connect(server.addr);
    let response = get(server.addr, "/");
    assert_eq!(
        response.status, 200,
        "served while another connection waits in its own thread"
    );
}

#[test]
fn chromium_loads_the_page_and_its_image() {
    let Some(browser) = common::browser::Chromium::new() else {
        return;
    };
    let server = start(&[]);
    let load = browser.load(&format!("http://{}/", server.addr), None);
    assert_eq!(load.title(), Some("image loaded 32x32"), "{load:?}");
    server.expect_line("\"GET /socket.png HTTP/1.1\" -> 200 OK");
}

#[test]
fn bad_root_and_port_in_use_are_explained() {
    let out = common::run(EXE, &["--port", "0", "--root", "no-such-folder"], b"");
    common::assert_error_and_hint(&out, "--root names the folder");
    assert!(
        out.stderr.contains("cannot serve folder 'no-such-folder'"),
        "{}",
        out.stderr
    );
    let out = common::run(EXE, &["--port", "0", "--root", "www/index.html"], b"");
    common::assert_error_and_hint(&out, "--root must name a folder");
    let server = start(&[]);
    let port = server.port().to_string();
    let out = common::run(EXE, &["--bind", "127.0.0.1", "--port", &port], b"");
    common::assert_error_and_hint(&out, "already holds TCP port");
}

#[test]
fn help_shows_the_handout_port_and_the_default_site() {
    let out = common::run(EXE, &["--help"], b"");
    assert_eq!(out.code(), Some(0));
    assert!(out.stdout.contains("[default: 6789]"), "{}", out.stdout);
    assert!(out.stdout.contains("[default: www]"), "{}", out.stdout);
}
