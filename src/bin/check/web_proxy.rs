//! web-proxy: K&R assignment 4, a forward proxy with a cache, judged the
//! way CMU's proxy lab driver judges one: every object fetched through the
//! proxy must be byte for byte what a direct fetch from the origin gives;
//! an origin that never answers must not hold up other clients; a cached
//! object must still come back once the origin is gone.
//!
//! check runs the origin itself (origin.rs) and sends the proxy requests in
//! absolute form, `GET http://127.0.0.1:PORT/path HTTP/1.1` (RFC 9112 §3.2.2).

use std::io::Write;
use std::time::{Duration, Instant};

use crate::Ctx;
use crate::http::{Conn, Response};
use crate::origin::Origin;
use crate::report::{Failure, Outcome, Test, same};
use crate::wire::{self, End};

pub fn tests() -> Vec<Test> {
    vec![
        Test::new(
            "GET a text object: byte-exact against a direct fetch",
            2,
            text,
        ),
        Test::new(
            "GET a binary object (every byte value): byte-exact",
            2,
            binary,
        ),
        Test::new("GET a 1 MiB binary object", 1, big),
        Test::new("HEAD: the head and no body", 1, head),
        Test::new(
            "POST: the body reaches the origin and its answer comes back",
            1,
            post,
        ),
        Test::new("a 404 from the origin is passed through", 1, not_found),
        Test::new("a chunked body from the origin", 1, chunked),
        Test::new(
            "a close-delimited body: all of it, and the response ends",
            1,
            close_delimited,
        ),
        Test::new("a request head in one-byte writes with pauses", 1, trickle),
        Test::new(
            "keep-alive: a second request on the same connection",
            1,
            keep_alive,
        ),
        Test::new(
            "an origin that never answers does not hold up other clients",
            2,
            hang,
        ),
        Test::new(
            "an origin that closes mid-body: no whole response is made up",
            1,
            truncated,
        ),
        Test::new(
            "a malformed request gets an error and the proxy keeps serving",
            1,
            malformed,
        ),
        Test::new(
            "an error (503) is not served again from the cache",
            1,
            flaky,
        ),
        Test::new(
            "cache: a cacheable object comes back with the origin gone",
            3,
            cache,
        ),
    ]
}

fn origin(ctx: &Ctx) -> Result<Origin, Failure> {
    Origin::start(ctx.seed).map_err(|e| {
        Failure::new(
            format!("check cannot start its origin: {e}"),
            "check itself failed",
        )
    })
}

/// The request line and head check sends through the proxy.
fn request(method: &str, url: &str, origin: &Origin, extra: &str) -> Vec<u8> {
    format!(
        "{method} {url} HTTP/1.1\r\nHost: {}\r\nUser-Agent: check\r\n{extra}\r\n",
        origin.addr
    )
    .into_bytes()
}

/// Sends `bytes` to the proxy (in pieces of `piece`) and reads one response.
fn through(
    ctx: &Ctx,
    bytes: &[u8],
    piece: usize,
    head_only: bool,
) -> Result<(Response, Conn), Failure> {
    let mut stream = wire::connect(ctx.addr(), ctx.timeout)?;
    let pause = if piece == 1 {
        Duration::from_millis(3)
    } else {
        Duration::ZERO
    };
    // A write error is not the verdict yet: a proxy that answered early
    // (a 400 after a partial head) and closed has its answer waiting.
    let _ = wire::write_in_pieces(&mut stream, bytes, piece.max(1), pause);
    let mut conn = Conn::new(stream, Instant::now() + ctx.timeout);
    match conn.response(head_only) {
        Ok(r) => Ok((r, conn)),
        Err((got, end)) => Err(Failure::bytes(
            b"HTTP/1.1 200 OK\r\n",
            &got,
            format!("no whole response head came: {}", end.describe()),
            "the proxy must send the origin's status line and headers, ending with an empty line",
        )),
    }
}

/// GET `path` through the proxy, with `Connection: close`.
fn get(ctx: &Ctx, origin: &Origin, path: &str) -> Result<Response, Failure> {
    let req = request("GET", &origin.url(path), origin, "Connection: close\r\n");
    Ok(through(ctx, &req, 64 * 1024, false)?.0)
}

/// The same object fetched from the origin directly.
fn direct(origin: &Origin, path: &str, ctx: &Ctx) -> Result<Response, Failure> {
    let mut stream = wire::connect(origin.addr, ctx.timeout)?;
    let _ = stream.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            origin.addr
        )
        .as_bytes(),
    );
    Conn::new(stream, Instant::now() + ctx.timeout)
        .response(false)
        .map_err(|(_, end)| {
            Failure::new(
                format!("check's own origin failed: {}", end.describe()),
                "check itself failed",
            )
        })
}

fn whole(r: &Response, want: &[u8], status: u16) -> Outcome {
    if r.status != status {
        return Err(Failure::new(
            format!(
                "status {} from the proxy, {status} from the origin",
                r.status
            ),
            "the proxy must pass the origin's status code through unchanged",
        ));
    }
    if !r.complete && r.body.len() < want.len() {
        let why = r.end.as_ref().map_or("", End::describe);
        return Err(Failure::bytes(
            want,
            &r.body,
            format!("the body ended early ({} framing): {why}", r.framing),
            "the proxy stopped relaying before the body was whole: keep reading from the origin until its framing says the body is over (Content-Length bytes, the last chunk, or the origin's close)",
        ));
    }
    same(
        "the body through the proxy",
        want,
        &r.body,
        "the proxy changed the body: relay bytes, not text (no decoding, no newline translation), and all of them",
    )
}

fn fetch_compare(ctx: &Ctx, path: &str) -> Outcome {
    let origin = origin(ctx)?;
    let want = direct(&origin, path, ctx)?;
    let got = get(ctx, &origin, path)?;
    whole(&got, &want.body, want.status)
}

fn text(ctx: &Ctx) -> Outcome {
    fetch_compare(ctx, "/text/5000")
}

fn binary(ctx: &Ctx) -> Outcome {
    fetch_compare(ctx, "/bin/4096")
}

fn big(ctx: &Ctx) -> Outcome {
    fetch_compare(ctx, "/bin/1048576")
}

fn head(ctx: &Ctx) -> Outcome {
    let origin = origin(ctx)?;
    let req = request(
        "HEAD",
        &origin.url("/text/3000"),
        &origin,
        "Connection: close\r\n",
    );
    let (r, mut conn) = through(ctx, &req, 64 * 1024, true)?;
    if r.status != 200 {
        return Err(Failure::new(
            format!("status {} for HEAD", r.status),
            "the origin answered 200: pass it through",
        ));
    }
    conn.deadline = Instant::now() + ctx.timeout.min(Duration::from_millis(500));
    let (extra, _) = conn.rest();
    let extra = [conn.leftover(), &extra].concat();
    same(
        "bytes after the HEAD response's head",
        b"",
        &extra,
        "a response to HEAD has no body even though its Content-Length names one (RFC 9110 §9.3.2): the proxy must not wait for one, nor send one",
    )
}

fn post(ctx: &Ctx) -> Outcome {
    let origin = origin(ctx)?;
    let body = wire::text(&mut ctx.rng("post"), 3000);
    let mut req = request(
        "POST",
        &origin.url("/echo"),
        &origin,
        &format!("Content-Length: {}\r\nConnection: close\r\n", body.len()),
    );
    req.extend_from_slice(&body);
    let (r, _) = through(ctx, &req, 64 * 1024, false)?;
    whole(&r, &body, 200).map_err(|f| f.also("the origin answers a POST with the body it received: the proxy must forward the request body, Content-Length bytes after the head"))
}

fn not_found(ctx: &Ctx) -> Outcome {
    fetch_compare(ctx, "/status/404")
}

fn chunked(ctx: &Ctx) -> Outcome {
    let origin = origin(ctx)?;
    let got = get(ctx, &origin, "/chunked/4500")?;
    whole(&got, &origin.body("/chunked/4500"), 200).map_err(|f| f.also("the origin sent Transfer-Encoding: chunked: relay the chunks as they are (with that header), or decode them and send a Content-Length"))
}

fn close_delimited(ctx: &Ctx) -> Outcome {
    let origin = origin(ctx)?;
    let got = get(ctx, &origin, "/close/3000")?;
    if got.framing == "close" && !got.complete {
        return Err(Failure::bytes(
            &origin.body("/close/3000"),
            &got.body,
            format!(
                "the body had no length and then {}",
                got.end.as_ref().map_or("", End::describe)
            ),
            "the origin's body had no Content-Length and ended when the origin closed: the proxy must then close the client's connection too (or re-frame the body), since that close is the only end a client can see (RFC 9112 §6.3)",
        ));
    }
    whole(&got, &origin.body("/close/3000"), 200)
}

fn trickle(ctx: &Ctx) -> Outcome {
    let origin = origin(ctx)?;
    let req = request(
        "GET",
        &origin.url("/text/200"),
        &origin,
        "Connection: close\r\n",
    );
    through(ctx, &req, 1, false)
        .and_then(|(r, _)| whole(&r, &origin.body("/text/200"), 200))
        .map_err(|f| Failure {
            hint: "the request head arrived one byte at a time, with pauses: a proxy that takes \
                   what one recv() returns as the whole head sees a fragment of it. Read until the \
                   empty line (\\r\\n\\r\\n) that ends the head"
                .into(),
            ..f
        })
}

fn keep_alive(ctx: &Ctx) -> Outcome {
    let origin = origin(ctx)?;
    let req = request("GET", &origin.url("/text/1000"), &origin, "");
    let (first, mut conn) = through(ctx, &req, 64 * 1024, false)?;
    whole(&first, &origin.body("/text/1000"), 200)?;
    if first.closes() {
        return Ok(()); // The proxy said it would close: the client opens a new connection.
    }
    let _ = conn.stream.write_all(&request(
        "GET",
        &origin.url("/text/700"),
        &origin,
        "Connection: close\r\n",
    ));
    conn.deadline = Instant::now() + ctx.timeout;
    match conn.response(false) {
        Ok(second) => whole(&second, &origin.body("/text/700"), 200),
        Err((got, end)) => Err(Failure::new(
            format!(
                "no answer to a second request on the same connection ({} bytes; {})",
                got.len(),
                end.describe()
            ),
            "the first response kept the connection open (HTTP/1.1 without Connection: close), so the client may send another request on it: serve it, or answer the first with Connection: close",
        )),
    }
}

fn hang(ctx: &Ctx) -> Outcome {
    let origin = origin(ctx)?;
    let mut stuck = wire::connect(ctx.addr(), ctx.timeout)?;
    let _ = stuck.write_all(&request(
        "GET",
        &origin.url("/hang"),
        &origin,
        "Connection: close\r\n",
    ));
    // Let the proxy reach the origin and wait on it.
    let end = Instant::now() + ctx.timeout;
    while origin.request_count() == 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    let other = get(ctx, &origin, "/text/500");
    drop(stuck);
    other.and_then(|r| whole(&r, &origin.body("/text/500"), 200)).map_err(|f| Failure {
        hint: "while one client waited on an origin that never answers, another client got no answer in time: the proxy serves one request at a time. Serve each client on its own thread".into(),
        ..f
    })
}

fn truncated(ctx: &Ctx) -> Outcome {
    let origin = origin(ctx)?;
    let r = get(ctx, &origin, "/truncated/4000")?;
    if r.end == Some(End::TimedOut) {
        return Err(Failure::new(
            format!(
                "{} body bytes came, then the proxy neither finished nor closed",
                r.body.len()
            ),
            "the origin promised 4000 bytes, sent 2000 and closed: the proxy must close the client's connection then (or answer 502), or the client waits for ever",
        ));
    }
    if r.status == 200 && r.complete && r.body.len() < 4000 {
        return Err(Failure::new(
            format!(
                "the proxy presented {} bytes as a whole response",
                r.body.len()
            ),
            "the origin closed after half its promised Content-Length: the proxy must not re-frame what it got as complete (and must not cache it)",
        ));
    }
    Ok(())
}

fn malformed(ctx: &Ctx) -> Outcome {
    let mut stream = wire::connect(ctx.addr(), ctx.timeout)?;
    let _ = stream.write_all(b"THIS IS NOT HTTP\r\n\r\n");
    let mut conn = Conn::new(stream, Instant::now() + ctx.timeout);
    match conn.response(false) {
        Ok(r) if (200..400).contains(&r.status) => {
            return Err(Failure::new(
                format!("status {} for a request that is not HTTP", r.status),
                "answer 400 Bad Request (RFC 9112 §3) and close",
            ));
        }
        Err((_, End::TimedOut)) => {
            return Err(Failure::new(
                "no answer and no close for a request that is not HTTP",
                "answer 400 Bad Request, or close: a client must not wait for ever",
            ));
        }
        _ => {}
    }
    let origin = origin(ctx)?;
    let r = get(ctx, &origin, "/text/100")
        .map_err(|f| f.also("the proxy stopped serving after a malformed request"))?;
    whole(&r, &origin.body("/text/100"), 200)
}

fn flaky(ctx: &Ctx) -> Outcome {
    let origin = origin(ctx)?;
    let first = get(ctx, &origin, "/flaky")?;
    if first.status != 503 {
        return Err(Failure::new(
            format!("status {} where the origin said 503", first.status),
            "pass the origin's status through",
        ));
    }
    let second = get(ctx, &origin, "/flaky")?;
    if second.status == 503 {
        return Err(Failure::new(
            format!(
                "the second request got 503 again; the origin saw {} request(s)",
                origin.request_count()
            ),
            "the origin's 503 had no Cache-Control and 503 is not cacheable by default (RFC 9111 §3, RFC 9110 §15.6.4): the proxy served a stored error instead of asking the origin again. Cache only 200 responses (and what the headers allow)",
        ));
    }
    Ok(())
}

fn cache(ctx: &Ctx) -> Outcome {
    let mut origin = origin(ctx)?;
    let want = origin.body("/cacheable/2000");
    whole(&get(ctx, &origin, "/cacheable/2000")?, &want, 200)?;
    origin.stop();
    let again = get(ctx, &origin, "/cacheable/2000")
        .map_err(|f| f.also("check stopped its origin after the first fetch"))?;
    whole(&again, &want, 200).map_err(|f| Failure {
        hint: "check stopped its origin after the first fetch; the object said Cache-Control: max-age=300, so a caching proxy answers from its cache. This one asked the origin again, or kept nothing".into(),
        ..f
    })
}
