//! The experiments of labs/07-web-server.md: a path with `..` in it, plain
//! and percent-encoded, and a symbolic link out of the root, against
//! web_server; and keep-alive, two requests on one connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;

use anyhow::Context;

use crate::harness::{Program, WAIT};
use crate::{Experiment, Report};

pub const EXPERIMENTS: &[Experiment] = &[
    Experiment {
        name: "path-traversal",
        worksheet: "labs/07-web-server.md, Part C",
        summary: "GET /../secret.txt, /%2e%2e/secret.txt and a symlink out of the root: web_server answers 403, never the file",
        run: path_traversal,
    },
    Experiment {
        name: "keep-alive",
        worksheet: "labs/07-web-server.md, Part B",
        summary: "two requests on one connection (HTTP/1.1) get two responses; HTTP/1.0 gets one and a close",
        run: keep_alive,
    },
];

/// A folder with a site in `root/` and a secret next to it, outside the root.
struct Site {
    base: PathBuf,
    /// Whether root/leak.txt (a symbolic link to ../secret.txt) was made.
    linked: bool,
}

impl Site {
    fn new() -> anyhow::Result<Site> {
        let base = std::env::temp_dir().join(format!("socketlab-lab-web-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(&root).context("failed to create the site folder")?;
        std::fs::write(root.join("index.html"), "<h1>the site</h1>\n")
            .and_then(|()| {
                std::fs::write(base.join("secret.txt"), "the secret, outside the root\n")
            })
            .context("failed to write the site's files")?;
        let linked = symlink(&base.join("secret.txt"), &root.join("leak.txt"))
            .context("failed to create the symbolic link")?;
        Ok(Site { base, linked })
    }

    fn root(&self) -> PathBuf {
        self.base.join("root")
    }
}

/// symlink(2). Windows lets only an administrator (or Developer Mode) make
/// one: there no link is made, and Ok(false) says so.
#[cfg(unix)]
fn symlink(target: &std::path::Path, link: &std::path::Path) -> std::io::Result<bool> {
    std::os::unix::fs::symlink(target, link).map(|()| true)
}
#[cfg(not(unix))]
fn symlink(_target: &std::path::Path, _link: &std::path::Path) -> std::io::Result<bool> {
    Ok(false)
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Sends `request` on `conn` and reads one response: status line and body
/// (Content-Length bytes).
fn exchange(conn: &mut BufReader<TcpStream>, request: &str) -> anyhow::Result<(String, Vec<u8>)> {
    conn.get_mut()
        .write_all(request.as_bytes())
        .context("failed to send the request")?;
    let mut status = String::new();
    conn.read_line(&mut status).context("no status line")?;
    let mut length = 0;
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).context("no header line")?;
        if line.trim_end().is_empty() {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().context("a bad Content-Length")?;
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body)
        .context("the body was cut short")?;
    Ok((status.trim_end().to_string(), body))
}

fn connect(addr: SocketAddr) -> anyhow::Result<BufReader<TcpStream>> {
    let stream =
        TcpStream::connect(addr).with_context(|| format!("failed to connect to {addr}"))?;
    stream
        .set_read_timeout(Some(WAIT))
        .context("failed to set a timeout")?;
    Ok(BufReader::new(stream))
}

fn path_traversal(r: &mut Report) -> anyhow::Result<()> {
    let site = Site::new()?;
    let root = site.root();
    let root_arg = root
        .to_str()
        .context("the temp folder's name is not UTF-8")?;
    let (_server, addr) = Program::server("web_server", &["--root", root_arg])?;
    r.did(format!(
        "web_server --root {}: index.html and a symbolic link leak.txt -> ../secret.txt inside, secret.txt outside",
        root.display()
    ));
    for target in [
        "/index.html",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/leak.txt",
    ] {
        if target == "/leak.txt" && !site.linked {
            let why = format!("no symbolic link could be made on {}", std::env::consts::OS);
            r.not_checked("/leak.txt: 403 Forbidden", &why);
            continue;
        }
        let request = format!("GET {target} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n");
        let (status, body) = exchange(&mut connect(addr)?, &request)?;
        r.saw(format!("GET {target} -> {status}"));
        let leaked = String::from_utf8_lossy(&body).contains("the secret");
        if target == "/index.html" {
            r.check(status.contains(" 200 "), "the site's own page: 200 OK");
        } else {
            r.check(
                status.contains(" 403 ") && !leaked,
                format!("{target}: 403 Forbidden, and the secret is not in the body"),
            );
        }
    }
    r.why(
        "the server decodes %2e%2e to .. first, then refuses any .. segment; and it resolves \
         symbolic links (canonicalize(), realpath(3)) and refuses a file whose real path is \
         not under the root. A server that joined the path to the root as it came would have \
         sent the secret (curl cleans /../ itself: `curl --path-as-is` sends it as typed)",
    );
    Ok(())
}

fn keep_alive(r: &mut Report) -> anyhow::Result<()> {
    let (server, addr) = Program::server(
        "web_server",
        &["--root", concat!(env!("CARGO_MANIFEST_DIR"), "/www")],
    )?;
    r.did(format!(
        "web_server on {addr} serving www/; one connection, two HTTP/1.1 requests"
    ));
    let mut conn = connect(addr)?;
    let port = conn
        .get_ref()
        .local_addr()
        .context("no local address")?
        .port();
    let (first, _) = exchange(&mut conn, "GET / HTTP/1.1\r\nHost: lab\r\n\r\n")?;
    let (second, image) = exchange(&mut conn, "GET /socket.png HTTP/1.1\r\nHost: lab\r\n\r\n")?;
    r.saw(format!(
        "from local port {port}: {first}, then {second} ({} body bytes)",
        image.len()
    ));
    let logged = server.expect_line(&format!("127.0.0.1:{port} \"GET /socket.png"))?;
    r.saw(format!("web_server: {logged}"));
    r.check(
        first.contains(" 200 ") && second.contains(" 200 "),
        "both requests answered on the same connection (the same client port in the log)",
    );
    let mut old = connect(addr)?;
    let (status, _) = exchange(&mut old, "GET / HTTP/1.0\r\n\r\n")?;
    let mut rest = Vec::new();
    let closed = matches!(old.read_to_end(&mut rest), Ok(0));
    r.saw(format!(
        "HTTP/1.0: {status}, then the connection {}",
        if closed {
            "closed (FIN)"
        } else {
            "stayed open"
        }
    ));
    r.check(
        closed,
        "an HTTP/1.0 request without keep-alive: the server closes after the response",
    );
    r.why(
        "every response carries Content-Length, so the client knows where the body ends and \
         the connection can carry the next request (RFC 9112 §9.3); HTTP/1.0 closed after each \
         response unless the client asked for keep-alive",
    );
    Ok(())
}
