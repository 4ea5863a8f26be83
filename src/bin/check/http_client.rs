//! http-client: a GET written by hand on a TCP socket (seed 003, CS144's
//! webget). The client connects, sends `GET /path HTTP/1.1` with a Host
//! header, lines ending in CRLF and an empty line, reads the response and
//! prints its body.
//!
//! check plays the origin (origin.rs) and runs the client once per test
//! with `{url}` (or `{host}`, `{port}` and `{path}`) filled in; it judges
//! the request that arrived and whether the body appears whole in what the
//! client printed. The bodies are lowercase text, so any client can print them.

use crate::Ctx;
use crate::origin::Origin;
use crate::report::{Failure, Outcome, Test};
use crate::spawn;

pub fn tests() -> Vec<Test> {
    vec![
        Test::new(
            "the request: GET path HTTP/1.x, a Host header, CRLF line ends",
            2,
            request,
        ),
        Test::new("a Content-Length body is printed whole", 2, length),
        Test::new(
            "a body that arrives in small pieces is printed whole",
            1,
            pieces,
        ),
        Test::new("a chunked body is printed decoded", 2, chunked),
        Test::new("a close-delimited body is printed whole", 1, close),
        Test::new(
            "the client stops at Content-Length on a kept-alive connection",
            1,
            keep_alive,
        ),
    ]
}

struct Run {
    origin: Origin,
    stdout: String,
    exited: bool,
}

fn run(ctx: &Ctx, path: &str) -> Result<Run, Failure> {
    let origin = Origin::start(ctx.seed).map_err(|e| {
        Failure::new(
            format!("check cannot start its origin: {e}"),
            "check itself failed",
        )
    })?;
    let vars = [
        ("url", origin.url(path)),
        ("host", "127.0.0.1".to_string()),
        ("port", origin.addr.port().to_string()),
        ("path", path.to_string()),
    ];
    let command = spawn::fill(ctx.exec.as_deref().unwrap_or(""), &vars);
    let mut child = spawn::start(&command, &ctx.input)
        .map_err(|e| Failure::new(format!("{e:#}"), "the --exec command could not be started"))?;
    let exited = child.wait_for(ctx.timeout).is_some();
    let stdout = String::from_utf8_lossy(&child.stdout()).into_owned();
    Ok(Run {
        origin,
        stdout,
        exited,
    })
}

fn body_printed(ctx: &Ctx, path: &str, what: &str) -> Outcome {
    let r = run(ctx, path)?;
    let want = r.origin.body(path);
    let want_text = String::from_utf8_lossy(&want);
    if r.stdout.contains(want_text.as_ref()) {
        return Ok(());
    }
    let out = r.stdout.as_bytes();
    // Show the output from where the body begins (its first 20 bytes), if it is there at all.
    let start = want_text
        .get(..20)
        .and_then(|p| r.stdout.find(p))
        .unwrap_or(0);
    let got = &out[start..out.len().min(start + want.len())];
    let hint = if !r.exited {
        "the client was still running at the timeout: did it wait for the server to close while the body's end was already known?".to_string()
    } else {
        format!(
            "the body ({what}) is not in the client's output whole: read until the framing says it is over, not once"
        )
    };
    Err(Failure::bytes(
        &want,
        got,
        format!("the {}-byte body was not printed whole", want.len()),
        hint,
    ))
}

fn request(ctx: &Ctx) -> Outcome {
    let r = run(ctx, "/text/100")?;
    let requests = r
        .origin
        .requests
        .lock()
        .map(|q| q.clone())
        .unwrap_or_default();
    let Some(head) = requests.first() else {
        return Err(Failure::new(
            "no request arrived at check's origin",
            "connect to {host}:{port} (or the URL in {url}) and send the request",
        ));
    };
    let want = format!("GET /text/100 HTTP/1.1\r\nHost: {}\r\n", r.origin.addr);
    let text = String::from_utf8_lossy(head);
    let line_ok = text.starts_with("GET /text/100 HTTP/1.");
    let host_ok = text
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("host:"));
    let crlf_ok = head
        .windows(2)
        .filter(|w| w[1] == b'\n')
        .all(|w| w[0] == b'\r');
    if line_ok && host_ok && crlf_ok {
        return Ok(());
    }
    Err(Failure::bytes(
        want.as_bytes(),
        head,
        "the request is not GET <path> HTTP/1.1 with a Host header and CRLF line ends",
        "an HTTP/1.1 request is the request line (method, path, version), header lines, and an empty line, each ending with \\r\\n; Host is required (RFC 9112 §3.2)",
    ))
}

fn length(ctx: &Ctx) -> Outcome {
    body_printed(ctx, "/text/3000", "3000 bytes with Content-Length")
}

fn pieces(ctx: &Ctx) -> Outcome {
    body_printed(ctx, "/pieces/1500", "sent 7 bytes at a time")
}

fn chunked(ctx: &Ctx) -> Outcome {
    body_printed(ctx, "/chunked/4500", "Transfer-Encoding: chunked, 1000-byte chunks").map_err(|f| f.also("a chunked body is hex size lines, each followed by that many bytes and \\r\\n, then 0 (RFC 9112 §7.1): print the data, not the size lines"))
}

fn close(ctx: &Ctx) -> Outcome {
    body_printed(
        ctx,
        "/close/2500",
        "no Content-Length: it ends when the server closes",
    )
}

fn keep_alive(ctx: &Ctx) -> Outcome {
    let r = run(ctx, "/text/800")?;
    let asked_close = r
        .origin
        .requests
        .lock()
        .map(|q| {
            q.first().is_some_and(|h| {
                String::from_utf8_lossy(h)
                    .to_ascii_lowercase()
                    .contains("connection: close")
            })
        })
        .unwrap_or(false);
    if r.exited || asked_close {
        return Ok(());
    }
    Err(Failure::new(
        format!("the client was still running after {:?}", ctx.timeout),
        "the response said Content-Length: 800 and the server kept the connection open (HTTP/1.1 keep-alive): stop reading after 800 body bytes, or send Connection: close in the request",
    ))
}
