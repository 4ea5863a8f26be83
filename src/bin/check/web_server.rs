//! web-server: K&R assignment 1. A GET for a file in the served folder gets
//! `200 OK` and the file's bytes exactly; a missing file gets `404 Not
//! Found`; nothing outside the folder is ever served; clients are served at
//! once (a thread each).
//!
//! check writes its test files into the folder first (`{dir}` with
//! `--exec`, `--dir DIR` with `--server`); every name starts with `check-`.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::Ctx;
use crate::http::{Conn, Response};
use crate::report::{Failure, Outcome, Test, same};
use crate::wire::{self, End};

pub fn tests() -> Vec<Test> {
    vec![
        Test::new("GET a text file", 2, text),
        Test::new("GET a binary file: byte-exact, every byte value", 2, binary),
        Test::new("GET a 1 MiB file", 1, big_file),
        Test::new("404 for a file that does not exist", 2, missing),
        Test::new("the status line and header lines end with CRLF", 1, crlf),
        Test::new(
            "path traversal: nothing outside the folder is served",
            2,
            traversal,
        ),
        Test::new("a request in one-byte writes with pauses", 1, trickle),
        Test::new(
            "a silent client does not keep the next one waiting",
            2,
            silent,
        ),
        Test::new(
            "a malformed request; the server still serves the next",
            1,
            malformed,
        ),
        Test::new(
            "a client resets mid-request; the server still serves the next",
            1,
            reset,
        ),
    ]
}

const PAGE: &str = "check-page.html";
const DATA: &str = "check-data.bin";
const BIG: &str = "check-big.bin";
/// Written next to the folder (only in a folder check made itself): a
/// server that lets `..` out of its folder serves it.
const SECRET: &str = "check-secret.txt";

fn page() -> Vec<u8> {
    b"<!DOCTYPE html>\n<html><head><title>check</title></head>\n<body><p>Hello from check: the K&R web server lab.</p></body></html>\n".to_vec()
}

fn data(seed: u64) -> Vec<u8> {
    let mut rng = socketlab::random::Rng::seeded(seed);
    let mut bytes = wire::every_byte(16);
    bytes.extend(b"\r\n\r\n\n\r\x1a\x00".iter());
    bytes.extend((0..8192).map(|_| rng.next_u64() as u8));
    bytes
}

/// A megabyte of seeded bytes without `\r`: this test is about size, and
/// [`data`] alone judges line-ending translation.
fn big(seed: u64) -> Vec<u8> {
    let mut rng = socketlab::random::Rng::seeded(seed ^ 0x1234);
    (0..1 << 20)
        .map(|_| match rng.next_u64() as u8 {
            b'\r' => b'\n',
            b => b,
        })
        .collect()
}

fn secret(seed: u64) -> String {
    format!("check secret {seed:x}: a web server must never serve this\n")
}

/// Writes the test files into the served folder (and, in a folder check
/// made, the secret next to it).
pub fn write_files(dir: &Path, ours: bool, seed: u64) -> anyhow::Result<()> {
    let files: [(&str, Vec<u8>); 3] = [(PAGE, page()), (DATA, data(seed)), (BIG, big(seed))];
    for (name, bytes) in files {
        fs::write(dir.join(name), bytes)
            .with_context(|| format!("failed to write '{}'", dir.join(name).display()))?;
    }
    if ours && let Some(parent) = dir.parent() {
        fs::write(parent.join(SECRET), secret(seed)).context("failed to write the secret file")?;
    }
    Ok(())
}

fn get_raw(ctx: &Ctx, request: &[u8], piece: usize) -> Result<Response, Failure> {
    let mut stream = wire::connect(ctx.addr(), ctx.timeout)?;
    let pause = if piece == 1 {
        Duration::from_millis(3)
    } else {
        Duration::ZERO
    };
    let _ = wire::write_in_pieces(&mut stream, request, piece, pause);
    Conn::new(stream, Instant::now() + ctx.timeout).response(false).map_err(|(got, end)| {
        Failure::bytes(b"HTTP/1.1 200 OK\r\n", &got, format!("no whole response head: {}", end.describe()),
            "a response is a status line (HTTP/1.1 200 OK), header lines, and an empty line, each ending with \\r\\n")
    })
}

fn request(ctx: &Ctx, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: check\r\nConnection: close\r\n\r\n",
        ctx.addr()
    )
    .into_bytes()
}

fn get(ctx: &Ctx, path: &str) -> Result<Response, Failure> {
    get_raw(ctx, &request(ctx, path), 64 * 1024)
}

fn file(ctx: &Ctx, name: &str, want: &[u8]) -> Outcome {
    let r = get(ctx, &format!("/{name}"))?;
    if r.status != 200 {
        return Err(Failure::new(
            format!("status {} for /{name}, which is in the folder", r.status),
            "the file exists in the served folder: answer HTTP/1.1 200 OK and its bytes",
        ));
    }
    if !r.complete {
        let why = r.end.as_ref().map_or("", End::describe);
        return Err(Failure::bytes(
            want,
            &r.body,
            format!("the body ended early ({} framing): {why}", r.framing),
            "send the whole file and then close (or say Content-Length: the file's size in bytes)",
        ));
    }
    if r.body.len() == want.len() + 2 && r.body.starts_with(want) && r.body.ends_with(b"\r\n") {
        return Err(Failure::bytes(
            want,
            &r.body,
            format!("/{name} came back with \\r\\n after the file"),
            "the server sent \\r\\n after the file (the K&R skeleton's last send): the body is every byte until the close (or Content-Length bytes), so those two bytes are part of it. Send only the file's bytes",
        ));
    }
    let hint = if want.len() > r.body.len() && want.contains(&b'\r') && !r.body.contains(&b'\r') {
        "the file's \\r\\n came back as \\n: the server read it in text mode, which translates line endings; open files in binary mode (open(path, 'rb')) and send the bytes"
    } else {
        "the body must be the file's bytes exactly: read and send bytes, with no decoding and no line-ending translation"
    };
    same(&format!("the body of /{name}"), want, &r.body, hint)
}

/// The server still answers: a 200 whose body begins with the page. Only
/// that, so a test of bad input fails for the bad input alone.
fn still_serves(ctx: &Ctx) -> Outcome {
    let r = get(ctx, &format!("/{PAGE}"))?;
    if r.status == 200 && r.body.starts_with(&page()) {
        return Ok(());
    }
    Err(Failure::bytes(
        &page(),
        &r.body,
        format!("status {} and no page for /{PAGE}", r.status),
        "the server must go on serving files after a bad client",
    ))
}

fn text(ctx: &Ctx) -> Outcome {
    file(ctx, PAGE, &page())
}

fn binary(ctx: &Ctx) -> Outcome {
    file(ctx, DATA, &data(ctx.seed))
}

fn big_file(ctx: &Ctx) -> Outcome {
    file(ctx, BIG, &big(ctx.seed))
}

fn missing(ctx: &Ctx) -> Outcome {
    let r = get(ctx, "/check-no-such-file.html")?;
    if r.status != 404 {
        return Err(Failure::new(
            format!("status {} for a file that does not exist", r.status),
            "answer HTTP/1.1 404 Not Found (with a short body saying so) when the file is not there",
        ));
    }
    Ok(())
}

fn crlf(ctx: &Ctx) -> Outcome {
    let r = get(ctx, &format!("/{PAGE}"))?;
    if !r.bare_lf {
        return Ok(());
    }
    let end = r.head.len().min(200);
    let fixed = String::from_utf8_lossy(&r.head[..end])
        .replace("\r\n", "\n")
        .replace('\n', "\r\n");
    Err(Failure::bytes(
        fixed.as_bytes(),
        &r.head[..end],
        "a line of the response head ended with \\n alone",
        "HTTP/1.1 ends the status line and every header line with \\r\\n (RFC 9112 §2.1); a bare \\n is tolerated by some clients, not all",
    ))
}

fn traversal(ctx: &Ctx) -> Outcome {
    let token = secret(ctx.seed);
    let probes = [
        format!("/../{SECRET}"),
        format!("/%2e%2e/{SECRET}"),
        format!("/..%2f{SECRET}"),
        "/../../../../../../../../etc/passwd".to_string(),
        "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd".to_string(),
    ];
    for path in probes {
        let Ok(r) = get(ctx, &path) else { continue };
        let body = String::from_utf8_lossy(&r.body);
        if r.status == 200 && (body.contains(token.trim()) || body.contains("root:")) {
            return Err(Failure::new(
                format!("GET {path} returned a file from outside the served folder"),
                "the server joined the URL path to its folder without checking: '..' climbs out of it. Resolve the full path (os.path.realpath) and refuse (403 or 404) anything not inside the folder",
            ));
        }
    }
    // The server must still answer after the probes.
    still_serves(ctx)
}

fn trickle(ctx: &Ctx) -> Outcome {
    let r = get_raw(ctx, &request(ctx, &format!("/{PAGE}")), 1)?;
    same(
        "the body",
        &page(),
        &r.body,
        "the request arrived one byte at a time: read until the empty line that ends the head, not once",
    )
}

fn silent(ctx: &Ctx) -> Outcome {
    let quiet = wire::connect(ctx.addr(), ctx.timeout)?;
    let other = still_serves(ctx);
    drop(quiet);
    other.map_err(|f| Failure {
        hint: "while one client was connected and silent, another got no answer in time: the server serves one connection at a time. Give each connection its own thread".into(),
        ..f
    })
}

fn malformed(ctx: &Ctx) -> Outcome {
    let mut stream = wire::connect(ctx.addr(), ctx.timeout)?;
    let _ = stream.write_all(b"THIS IS NOT HTTP\r\n\r\n");
    let _ = wire::read_until_end(&mut stream, Instant::now() + ctx.timeout, 1 << 20);
    still_serves(ctx).map_err(|f| {
        f.also("after a request line that is not HTTP, answer 400 Bad Request and go on serving")
    })
}

fn reset(ctx: &Ctx) -> Outcome {
    wire::rude_clients(ctx.addr(), ctx.timeout)?;
    still_serves(ctx).map_err(|f| {
        f.also("two clients had just reset their connections (one mid-request): treat that as that client's end")
    })
}
