//! check against real programs: socketlab's own pass every test of their
//! lab; the seeds' classic Python programs and the deliberately wrong
//! fixtures in tests/check_fixtures/ fail exactly the tests aimed at what
//! they get wrong, each with its explanation, and pass the rest.
//!
//! Every run uses short timeouts (a test that is expected to fail by a
//! timeout waits that long), so the whole file takes well under a minute.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, have_tool};

const CHECK: &str = env!("CARGO_BIN_EXE_check");
const UDP_SERVER: &str = env!("CARGO_BIN_EXE_udp_server");
const TCP_SERVER: &str = env!("CARGO_BIN_EXE_tcp_server");
const THREADED_SERVER: &str = env!("CARGO_BIN_EXE_threaded_server");
const WEB_PROXY: &str = env!("CARGO_BIN_EXE_web_proxy");
const TIME_SERVER: &str = env!("CARGO_BIN_EXE_time_server");
const TIME_CLIENT: &str = env!("CARGO_BIN_EXE_time_client");
const UDP_CLIENT: &str = env!("CARGO_BIN_EXE_udp_client");
const HTTP_GET: &str = env!("CARGO_BIN_EXE_http_get");
const SMTP_CLIENT: &str = env!("CARGO_BIN_EXE_smtp_client");
const HEARTBEAT_SERVER: &str = env!("CARGO_BIN_EXE_heartbeat_server");
const HEARTBEAT_CLIENT: &str = env!("CARGO_BIN_EXE_heartbeat_client");
const FIXTURES: &str = "tests/check_fixtures";

/// What one run of check printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The names of the tests that failed.
    fn failed(&self) -> BTreeSet<String> {
        self.names("FAIL  ")
    }

    fn passed(&self) -> BTreeSet<String> {
        self.names("PASS  ")
    }

    fn names(&self, mark: &str) -> BTreeSet<String> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(mark))
            .map(str::to_string)
            .collect()
    }

    /// The hint printed under the failed test `name`.
    fn hint(&self, name: &str) -> String {
        let mut lines = self
            .stdout
            .lines()
            .skip_while(|l| *l != format!("FAIL  {name}"));
        lines.next();
        lines
            .take_while(|l| l.starts_with("      "))
            .find_map(|l| l.trim_start().strip_prefix("hint: "))
            .unwrap_or_else(|| panic!("no hint under {name:?} in\n{}", self.stdout))
            .to_string()
    }
}

/// Runs check with `args` (at most 90 s, then it is killed).
fn check(args: &[&str]) -> Run {
    let mut child = Command::new(CHECK)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start check");
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let reading = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let reading_err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let end = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("check {args:?} ran for more than 90 s");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stdout: reading.join().expect("stdout"),
        stderr: reading_err.join().expect("stderr"),
    }
}

/// check LAB --exec COMMAND with a short timeout and a fixed seed.
fn exec(lab: &str, command: &str, timeout: &str) -> Run {
    check(&[lab, "--exec", command, "--timeout", timeout, "--seed", "7"])
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Every test passed, and the exit status says so.
fn assert_all_pass(run: &Run) {
    assert!(
        run.failed().is_empty(),
        "failures:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        !run.passed().is_empty(),
        "no tests ran:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert!(run.stdout.contains("score: "), "{}", run.stdout);
}

/// Exactly `expected` failed, the exit status is 1, and every failure has a hint.
fn assert_fails_exactly(run: &Run, expected: &[&str]) {
    assert_eq!(
        run.failed(),
        set(expected),
        "\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        !run.passed().is_empty(),
        "it should pass something:\n{}",
        run.stdout
    );
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    for name in expected {
        assert!(!run.hint(name).is_empty());
    }
}

// ----- socketlab's own programs pass every test of their lab -----

#[test]
fn udp_server_passes_udp_echo() {
    assert_all_pass(&exec(
        "udp-echo",
        &format!("{UDP_SERVER} --bind 127.0.0.1 --port {{port}} --quiet"),
        "3s",
    ));
}

#[test]
fn tcp_server_passes_tcp_echo() {
    assert_all_pass(&exec(
        "tcp-echo",
        &format!("{TCP_SERVER} --bind 127.0.0.1 --port {{port}} --quiet"),
        "5s",
    ));
}

#[test]
fn threaded_server_passes_threaded_server() {
    assert_all_pass(&exec(
        "threaded-server",
        &format!("{THREADED_SERVER} --port {{port}} --quiet"),
        "5s",
    ));
}

#[test]
fn web_proxy_passes_web_proxy() {
    assert_all_pass(&exec(
        "web-proxy",
        &format!("{WEB_PROXY} --port {{port}} --quiet"),
        "5s",
    ));
}

#[test]
fn time_server_passes_time_server() {
    assert_all_pass(&exec(
        "time-server",
        &format!("{TIME_SERVER} --bind 127.0.0.1 --port {{port}} --quiet"),
        "5s",
    ));
}

#[test]
fn time_client_passes_time_client() {
    assert_all_pass(&exec(
        "time-client",
        &format!("{TIME_CLIENT} --host {{host}} --port {{port}} --request time"),
        "5s",
    ));
}

#[test]
fn time_client_menu_driven_by_input_passes_time_client() {
    let cmd = format!("{TIME_CLIENT} --host {{host}} --port {{port}}");
    let run = check(&[
        "time-client",
        "--exec",
        &cmd,
        "--input",
        "1\\n2\\n3\\n4\\n",
        "--timeout",
        "5s",
        "--seed",
        "7",
    ]);
    assert_all_pass(&run);
}

#[test]
fn the_protocol_pages_python_client_passes_time_client() {
    if !have_tool("python3") {
        return;
    }
    assert_all_pass(&exec(
        "time-client",
        &format!("python3 {FIXTURES}/time_client.py {{host}} {{port}}"),
        "5s",
    ));
}

#[test]
fn udp_client_count_passes_udp_pinger() {
    let cmd = format!(
        "{UDP_CLIENT} --host {{host}} --port {{port}} --count 6 --interval 50ms --timeout 300ms"
    );
    assert_all_pass(&exec("udp-pinger", &cmd, "3s"));
}

#[test]
fn a_students_python_pinger_passes_udp_pinger() {
    if !have_tool("python3") {
        return;
    }
    assert_all_pass(&exec(
        "udp-pinger",
        &format!("python3 {FIXTURES}/udp_pinger.py {{host}} {{port}}"),
        "3s",
    ));
}

#[test]
fn http_get_passes_http_client() {
    assert_all_pass(&exec("http-client", &format!("{HTTP_GET} {{url}}"), "5s"));
}

/// socketlab's smtp_client takes its body as an option; the shell turns
/// check's stdin into it.
#[test]
fn smtp_client_passes_smtp_client() {
    let cmd = format!(
        "{SMTP_CLIENT} --host {{host}} --port {{port}} --to alice@example.com --body \"$(cat)\""
    );
    assert_all_pass(&exec("smtp-client", &cmd, "3s"));
}

#[test]
fn the_fixture_smtp_client_without_a_mistake_passes() {
    if !have_tool("python3") {
        return;
    }
    assert_all_pass(&exec(
        "smtp-client",
        &format!("python3 {FIXTURES}/smtp_client.py {{host}} {{port}}"),
        "3s",
    ));
}

#[test]
fn heartbeat_server_passes_heartbeat_server() {
    assert_all_pass(&exec(
        "heartbeat-server",
        &format!(
            "{HEARTBEAT_SERVER} --bind 127.0.0.1 --port {{port}} --dead-after {{dead_after}}s"
        ),
        "3s",
    ));
}

#[test]
fn heartbeat_client_passes_heartbeat_client() {
    assert_all_pass(&exec(
        "heartbeat-client",
        &format!("{HEARTBEAT_CLIENT} --host {{host}} --port {{port}} --interval {{interval}}s"),
        "3s",
    ));
}

#[test]
fn the_fixture_heartbeat_programs_without_a_mistake_pass() {
    if !have_tool("python3") {
        return;
    }
    assert_all_pass(&exec(
        "heartbeat-server",
        &format!("python3 {FIXTURES}/heartbeat_server.py {{port}} {{dead_after}}"),
        "3s",
    ));
    assert_all_pass(&exec(
        "heartbeat-client",
        &format!("python3 {FIXTURES}/heartbeat_client.py {{host}} {{port}} {{interval}}"),
        "3s",
    ));
}

/// The web server the web-server lab is proved against. When socketlab's
/// own web_server lands, point this at it, e.g.
/// `format!("{} --bind 127.0.0.1 --port {{port}} --root {{dir}}", env!("CARGO_BIN_EXE_web_server"))`
/// (with its real option names).
/// socketlab's web_server, serving the folder check fills.
fn web_server_command() -> String {
    format!(
        "{} --bind 127.0.0.1 --port {{port}} --root {{dir}} --quiet",
        env!("CARGO_BIN_EXE_web_server")
    )
}

#[test]
fn web_server_passes_web_server() {
    assert_all_pass(&exec("web-server", &web_server_command(), "5s"));
}

/// Python's http.server, a real outside web server, passes too.
#[test]
fn python_http_server_passes_web_server() {
    if !have_tool("python3") {
        return;
    }
    let command = "python3 -m http.server --bind 127.0.0.1 --directory {dir} {port}";
    assert_all_pass(&exec("web-server", command, "5s"));
}

// ----- socketlab's programs in a mode that lacks one thing fail that one thing -----

#[test]
fn threaded_server_single_fails_only_the_silent_client_test() {
    let run = exec(
        "threaded-server",
        &format!("{THREADED_SERVER} --port {{port}} --quiet --single"),
        "1500ms",
    );
    let name = "a silent client does not keep the next one waiting";
    assert_fails_exactly(&run, &[name]);
    assert!(run.hint(name).contains("one connection at a time"));
}

#[test]
fn tcp_server_once_fails_only_the_read_until_fin_tests() {
    let run = exec(
        "tcp-echo",
        &format!("{TCP_SERVER} --once --bind 127.0.0.1 --port {{port}} --quiet"),
        "2s",
    );
    assert_fails_exactly(
        &run,
        &[
            "read until FIN: 3000-byte message",
            "read until FIN: message in one-byte writes with pauses",
            "read until FIN: 100 KB message",
            "read until FIN: 1 MiB message",
        ],
    );
    assert!(
        run.hint("read until FIN: 100 KB message")
            .contains("read once with recv(1024)"),
        "{}",
        run.stdout
    );
}

#[test]
fn time_server_with_one_worker_fails_only_concurrency() {
    let run = exec(
        "time-server",
        &format!("{TIME_SERVER} --bind 127.0.0.1 --port {{port}} --quiet --threads 1"),
        "1500ms",
    );
    let name = "a second client is served while the first holds its connection";
    assert_fails_exactly(&run, &[name]);
    assert!(run.hint(name).contains("one client at a time"));
}

#[test]
fn web_proxy_without_cache_fails_only_the_cache_test() {
    let run = exec(
        "web-proxy",
        &format!("{WEB_PROXY} --port {{port}} --quiet --no-cache"),
        "3s",
    );
    let name = "cache: a cacheable object comes back with the origin gone";
    assert_fails_exactly(&run, &[name]);
    assert!(run.hint(name).contains("max-age=300"));
}

#[test]
fn a_plain_time_client_fails_the_handshake_and_what_needs_it() {
    let run = exec(
        "time-client",
        &format!("{TIME_CLIENT} --host {{host}} --port {{port}} --request time --plain"),
        "2s",
    );
    assert!(
        run.failed()
            .contains("the client sends KEY <A> with A from 1 to 256"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("received: \"PLAIN\""), "{}", run.stdout);
    assert_eq!(run.code, Some(1));
}

// ----- the seeds' classic programs: right where they are right -----

#[test]
fn classic_tcp_server_fails_long_messages_concurrency_and_bad_peers() {
    if !have_tool("python3") {
        return;
    }
    let run = exec(
        "tcp-echo",
        "python3 tests/classic/TCPServer.py {port}",
        "1500ms",
    );
    assert_fails_exactly(
        &run,
        &[
            "read until FIN: 3000-byte message",
            "read until FIN: message in one-byte writes with pauses",
            "read until FIN: 100 KB message",
            "read until FIN: 1 MiB message",
            "two clients at once: a silent one does not block the other",
            // Not in the classic's lesson, but true: an uncaught
            // ConnectionResetError or UnicodeDecodeError ends the server.
            "a client resets mid-message; the server still answers the next",
            "every byte value: ASCII letters uppercased, the rest unchanged",
        ],
    );
    assert!(run.passed().contains("short message comes back uppercased"));
    assert!(
        run.hint("read until FIN: 3000-byte message").contains(
            "your server read once with recv(1024): a 3000-byte message came back cut at 1024"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.hint("two clients at once: a silent one does not block the other")
            .contains("one connection at a time")
    );
    assert!(
        run.hint("every byte value: ASCII letters uppercased, the rest unchanged")
            .contains("UnicodeDecodeError")
    );
    // The caret stands under byte 1024 of the 3000-byte reply.
    assert!(
        run.stdout.contains("^ first difference at byte 1024"),
        "{}",
        run.stdout
    );
}

#[test]
fn classic_udp_server_fails_the_long_datagram_and_binary() {
    if !have_tool("python3") {
        return;
    }
    let run = exec(
        "udp-echo",
        "python3 tests/classic/UDPServer.py {port}",
        "1s",
    );
    assert_fails_exactly(
        &run,
        &[
            "a 3000-byte datagram comes back whole",
            "every byte value: ASCII letters uppercased, the rest unchanged",
        ],
    );
    assert!(
        run.hint("a 3000-byte datagram comes back whole")
            .contains("recvfrom(2048)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("^ first difference at byte 2048"),
        "{}",
        run.stdout
    );
}

#[test]
fn seed_003_threaded_server_passes_threaded_server() {
    if !have_tool("python3") {
        return;
    }
    let cmd = format!("python3 {FIXTURES}/seed003_server.py {{port}}");
    assert_all_pass(&exec("threaded-server", &cmd, "3s"));
}

#[test]
fn classic_udp_client_is_no_pinger() {
    if !have_tool("python3") {
        return;
    }
    // One line from stdin, one datagram, no timeouts handled: nothing of the pinger.
    let run = check(&[
        "udp-pinger",
        "--exec",
        "python3 tests/classic/UDPClient.py {host} {port}",
        "--input",
        "hello\\n",
        "--timeout",
        "1s",
        "--seed",
        "7",
    ]);
    assert!(
        run.failed()
            .contains("each ping is one datagram: Ping <seq> <time>"),
        "{}",
        run.stdout
    );
    assert!(
        run.failed()
            .contains("each lost ping prints Request timed out"),
        "{}",
        run.stdout
    );
    assert_eq!(run.code, Some(1));
}

// ----- deliberately wrong fixtures fail the test aimed at them, pass the rest -----

#[test]
fn a_server_that_reads_once_fails_only_the_read_until_fin_tests() {
    if !have_tool("python3") {
        return;
    }
    let run = exec(
        "tcp-echo",
        &format!("python3 {FIXTURES}/read_once_server.py {{port}}"),
        "2s",
    );
    assert_fails_exactly(
        &run,
        &[
            "read until FIN: 3000-byte message",
            "read until FIN: message in one-byte writes with pauses",
            "read until FIN: 100 KB message",
            "read until FIN: 1 MiB message",
        ],
    );
    assert!(
        run.hint("read until FIN: 3000-byte message")
            .contains("read once with recv(1024)")
    );
}

#[test]
fn a_web_server_with_lf_line_ends_fails_only_crlf() {
    if !have_tool("python3") {
        return;
    }
    let run = exec(
        "web-server",
        &format!("python3 {FIXTURES}/web_server.py {{port}} {{dir}} --lf"),
        "3s",
    );
    let name = "the status line and header lines end with CRLF";
    assert_fails_exactly(&run, &[name]);
    assert!(run.hint(name).contains("\\r\\n"));
}

#[test]
fn a_web_server_in_text_mode_fails_only_the_binary_file() {
    if !have_tool("python3") {
        return;
    }
    let run = exec(
        "web-server",
        &format!("python3 {FIXTURES}/web_server.py {{port}} {{dir}} --text-mode"),
        "3s",
    );
    let name = "GET a binary file: byte-exact, every byte value";
    assert_fails_exactly(&run, &[name]);
    assert!(run.hint(name).contains("text mode"), "{}", run.stdout);
}

#[test]
fn the_kr_web_server_skeleton_fails_what_it_gets_wrong() {
    if !have_tool("python3") {
        return;
    }
    let fixture = format!("{}/{FIXTURES}/kr_web_server.py", env!("CARGO_MANIFEST_DIR"));
    let run = exec(
        "web-server",
        &format!("cd {{dir}} && python3 {fixture} {{port}}"),
        "2s",
    );
    assert_fails_exactly(
        &run,
        &[
            "GET a text file",
            "GET a binary file: byte-exact, every byte value",
            "GET a 1 MiB file",
            "path traversal: nothing outside the folder is served",
            "a request in one-byte writes with pauses",
            "a silent client does not keep the next one waiting",
            "a client resets mid-request; the server still serves the next",
        ],
    );
    assert!(
        run.hint("GET a text file").contains("K&R skeleton"),
        "{}",
        run.stdout
    );
    assert!(
        run.hint("GET a binary file: byte-exact, every byte value")
            .contains("UnicodeDecodeError"),
        "{}",
        run.stdout
    );
    assert!(
        run.hint("path traversal: nothing outside the folder is served")
            .contains("'..'"),
        "{}",
        run.stdout
    );
    assert!(run.passed().contains("404 for a file that does not exist"));
}

#[test]
fn the_fixture_web_server_without_a_defect_passes() {
    if !have_tool("python3") {
        return;
    }
    assert_all_pass(&exec(
        "web-server",
        &format!("python3 {FIXTURES}/web_server.py {{port}} {{dir}}"),
        "3s",
    ));
}

#[test]
fn a_proxy_that_never_closes_fails_only_where_a_close_ends_the_body() {
    if !have_tool("python3") {
        return;
    }
    let run = exec(
        "web-proxy",
        &format!("python3 {FIXTURES}/naive_proxy.py {{port}} --never-close"),
        "2s",
    );
    assert_fails_exactly(
        &run,
        &[
            "a close-delimited body: all of it, and the response ends",
            "an origin that closes mid-body: no whole response is made up",
        ],
    );
    assert!(
        run.hint("a close-delimited body: all of it, and the response ends")
            .contains("RFC 9112 §6.3")
    );
}

#[test]
fn a_proxy_that_caches_errors_fails_only_the_error_cache_test() {
    if !have_tool("python3") {
        return;
    }
    let run = exec(
        "web-proxy",
        &format!("python3 {FIXTURES}/naive_proxy.py {{port}} --cache-errors"),
        "3s",
    );
    let name = "an error (503) is not served again from the cache";
    assert_fails_exactly(&run, &[name]);
    assert!(run.hint(name).contains("not cacheable"));
}

#[test]
fn a_proxy_that_reads_the_head_once_fails_only_the_one_byte_writes() {
    if !have_tool("python3") {
        return;
    }
    let run = exec(
        "web-proxy",
        &format!("python3 {FIXTURES}/naive_proxy.py {{port}} --recv-once"),
        "3s",
    );
    let name = "a request head in one-byte writes with pauses";
    assert_fails_exactly(&run, &[name]);
    assert!(
        run.hint(name).contains("one byte at a time"),
        "{}",
        run.stdout
    );
}

#[test]
fn the_fixture_proxy_without_a_defect_passes() {
    if !have_tool("python3") {
        return;
    }
    assert_all_pass(&exec(
        "web-proxy",
        &format!("python3 {FIXTURES}/naive_proxy.py {{port}}"),
        "3s",
    ));
}

#[test]
fn http_clients_that_read_once_or_until_close_fail_the_framing_tests() {
    if !have_tool("python3") {
        return;
    }
    let once = exec(
        "http-client",
        &format!("python3 {FIXTURES}/naive_http_get.py {{url}} --recv-once"),
        "3s",
    );
    assert_fails_exactly(
        &once,
        &[
            "a Content-Length body is printed whole",
            "a body that arrives in small pieces is printed whole",
            "a chunked body is printed decoded",
            "a close-delimited body is printed whole",
        ],
    );
    let until_close = exec(
        "http-client",
        &format!("python3 {FIXTURES}/naive_http_get.py {{url}}"),
        "1500ms",
    );
    assert!(
        until_close
            .failed()
            .contains("the client stops at Content-Length on a kept-alive connection")
    );
    assert!(
        until_close
            .passed()
            .contains("a close-delimited body is printed whole")
    );
}

// ----- the report, --json, --seed, --server, exit status, stopping -----

/// tests/check_fixtures/smtp_client.py with one mistake (`flag`) fails
/// exactly the test aimed at it; its hint contains `says`.
fn smtp_mistake(flag: &str, test: &str, says: &str) {
    if !have_tool("python3") {
        return;
    }
    let run = exec(
        "smtp-client",
        &format!("python3 {FIXTURES}/smtp_client.py {{host}} {{port}} {flag}"),
        "2s",
    );
    assert_fails_exactly(&run, &[test]);
    assert!(run.hint(test).contains(says), "{}", run.stdout);
}

#[test]
fn the_kr_mail_client_skeleton_fails_what_it_gets_wrong() {
    if !have_tool("python3") {
        return;
    }
    let run = exec(
        "smtp-client",
        &format!("python3 {FIXTURES}/kr_mail_client.py {{host}} {{port}}"),
        "2s",
    );
    assert_fails_exactly(
        &run,
        &[
            "reads the whole reply when it arrives in pieces (EHLO: 4 lines)",
            "dot-stuffing: body lines that start with '.' arrive intact",
        ],
    );
    assert!(
        run.hint("reads the whole reply when it arrives in pieces (EHLO: 4 lines)")
            .contains("recv(1024)"),
        "{}",
        run.stdout
    );
    // HELO without EHLO is right; "... reply not received from server." reports the 550.
    assert!(
        run.passed()
            .contains("falls back to HELO after 502 to EHLO")
    );
    assert!(
        run.passed()
            .contains("550 to RCPT TO: the client reports an error")
    );
}

#[test]
fn an_smtp_client_that_sends_before_the_greeting_fails_only_that() {
    smtp_mistake(
        "--no-wait-greeting",
        "waits for the 220 greeting before sending (a greeting 1 s late)",
        "the SMTP server speaks first",
    );
}

#[test]
fn an_smtp_client_that_reads_replies_with_one_recv_fails_only_the_split_reply() {
    smtp_mistake(
        "--recv-once",
        "reads the whole reply when it arrives in pieces (EHLO: 4 lines)",
        "not once with recv(1024)",
    );
}

#[test]
fn an_smtp_client_without_helo_fails_only_the_fallback() {
    smtp_mistake(
        "--no-helo",
        "falls back to HELO after 502 to EHLO",
        "say HELO instead",
    );
}

#[test]
fn an_smtp_client_with_lf_commands_fails_only_the_command_test() {
    smtp_mistake(
        "--lf",
        "MAIL FROM, RCPT TO, DATA in order, each line ending in CRLF",
        "\\r\\n",
    );
}

#[test]
fn an_smtp_client_with_lf_message_lines_fails_only_the_message_end() {
    smtp_mistake(
        "--lf-in-message",
        "the message's lines end in CRLF and it ends with CRLF.CRLF",
        "a bare \\n is not a line end",
    );
}

#[test]
fn an_smtp_client_without_dot_stuffing_fails_only_that() {
    smtp_mistake(
        "--no-dot-stuffing",
        "dot-stuffing: body lines that start with '.' arrive intact",
        "a lone '.' in the text ends the message early",
    );
}

#[test]
fn an_smtp_client_without_quit_fails_only_quit() {
    smtp_mistake(
        "--no-quit",
        "QUIT after the message is accepted",
        "QUIT asks the server to close",
    );
}

#[test]
fn an_smtp_client_that_ignores_550_or_421_fails_only_that_test() {
    smtp_mistake(
        "--ignore-550",
        "550 to RCPT TO: the client reports an error",
        "permanent refusal",
    );
    smtp_mistake(
        "--ignore-421",
        "421 and a closed connection: the client reports an error",
        "closing the connection",
    );
}

/// A heartbeat fixture (`program`, `args` after its own) with one mistake
/// fails exactly `tests`; the first one's hint contains `says`.
fn heartbeat_mistake(lab: &str, program: &str, args: &str, tests: &[&str], says: &str) {
    if !have_tool("python3") {
        return;
    }
    let run = exec(lab, &format!("python3 {FIXTURES}/{program} {args}"), "2s");
    assert_fails_exactly(&run, tests);
    assert!(run.hint(tests[0]).contains(says), "{}", run.stdout);
}

#[test]
fn a_heartbeat_server_without_the_delay_fails_only_the_delay() {
    heartbeat_mistake(
        "heartbeat-server",
        "heartbeat_server.py",
        "{port} {dead_after} --no-delay",
        &["each heartbeat is reported with its one-way delay"],
        "one-way delay",
    );
}

#[test]
fn a_heartbeat_server_blind_to_late_and_repeated_numbers_fails_those_two() {
    heartbeat_mistake(
        "heartbeat-server",
        "heartbeat_server.py",
        "{port} {dead_after} --no-late",
        &[
            "a duplicated heartbeat is reported",
            "a late (out-of-order) heartbeat is reported",
        ],
        "deliver a datagram twice",
    );
}

#[test]
fn a_heartbeat_server_that_crashes_on_garbage_fails_only_garbage() {
    heartbeat_mistake(
        "heartbeat-server",
        "heartbeat_server.py",
        "{port} {dead_after} --crash-on-garbage",
        &["garbage datagrams do not stop the server"],
        "never the end of the server",
    );
}

#[test]
fn a_heartbeat_server_that_never_notices_silence_fails_only_stopped() {
    heartbeat_mistake(
        "heartbeat-server",
        "heartbeat_server.py",
        "{port} {dead_after} --no-stopped",
        &["a silence longer than the dead-after time (1 s) is reported as stopped"],
        "UDP has no FIN",
    );
}

#[test]
fn heartbeat_clients_with_ms_double_increment_or_no_sleep_fail_only_their_test() {
    for (flag, test, says) in [
        (
            "--ms",
            "the timestamp is the send time in seconds since 1970 (within 1 s of check's clock)",
            "not milliseconds",
        ),
        (
            "--double-increment",
            "the numbers rise by one",
            "add one to the sequence number",
        ),
        (
            "--no-sleep",
            "one heartbeat per {interval} (0.2 s), on average",
            "sleep for the interval",
        ),
    ] {
        heartbeat_mistake(
            "heartbeat-client",
            "heartbeat_client.py",
            &format!("{{host}} {{port}} {{interval}} {flag}"),
            &[test],
            says,
        );
    }
}

#[test]
fn json_report_names_the_lab_tests_score_and_seed() {
    if !have_tool("python3") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("check-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("report.json");
    let path_text = path.display().to_string();
    let run = check(&[
        "tcp-echo",
        "--exec",
        &format!("python3 {FIXTURES}/read_once_server.py {{port}}"),
        "--timeout",
        "2s",
        "--seed",
        "42",
        "--json",
        &path_text,
    ]);
    assert_eq!(run.code, Some(1));
    let json = std::fs::read_to_string(&path).expect("the JSON report");
    let _ = std::fs::remove_dir_all(&dir);
    for needle in [
        "\"lab\":\"tcp-echo\"",
        "\"seed\":42",
        "\"passed\":4",
        "\"total\":8",
        "\"name\":\"read until FIN: 3000-byte message\",\"result\":\"fail\"",
        "\"versions\":{\"check\":",
        "\"environment\":{\"os\":",
    ] {
        assert!(json.contains(needle), "{needle} not in {json}");
    }
    // A JSON parser agrees that it is JSON, escapes and all.
    let parsed = Command::new("python3")
        .args([
            "-c",
            "import json,sys; r=json.load(sys.stdin); print(len(r['tests']), r['score']['points'])",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("piped").write_all(json.as_bytes())?;
            c.wait_with_output()
        })
        .expect("python3 json");
    assert_eq!(String::from_utf8_lossy(&parsed.stdout).trim(), "8 5");
}

/// The `expected:` line of a failure: the seeded payload shows in it.
fn expected_line(run: &Run) -> String {
    run.stdout
        .lines()
        .find(|l| l.trim_start().starts_with("expected:"))
        .unwrap_or_else(|| panic!("no expected: line in {}", run.stdout))
        .to_string()
}

#[test]
fn the_same_seed_gives_the_same_payloads() {
    if !have_tool("python3") {
        return;
    }
    let cmd = format!("python3 {FIXTURES}/read_once_server.py {{port}}");
    let a = check(&[
        "tcp-echo",
        "--exec",
        &cmd,
        "--timeout",
        "2s",
        "--seed",
        "11",
    ]);
    let b = check(&[
        "tcp-echo",
        "--exec",
        &cmd,
        "--timeout",
        "2s",
        "--seed",
        "11",
    ]);
    let c = check(&[
        "tcp-echo",
        "--exec",
        &cmd,
        "--timeout",
        "2s",
        "--seed",
        "12",
    ]);
    assert_eq!(expected_line(&a), expected_line(&b));
    assert_ne!(expected_line(&a), expected_line(&c));
    assert!(
        a.stdout.starts_with("check tcp-echo: testing 127.0.0.1:"),
        "{}",
        a.stdout
    );
    assert!(a.stdout.contains("seed 11"));
}

#[test]
fn a_running_server_is_tested_with_server() {
    let server = Server::start(
        TCP_SERVER,
        &["--bind", "127.0.0.1", "--port", "0", "--quiet"],
    );
    let run = check(&[
        "tcp-echo",
        "--server",
        &server.addr.to_string(),
        "--timeout",
        "5s",
    ]);
    assert_all_pass(&run);
}

#[test]
fn bad_usage_is_exit_status_2() {
    for args in [
        vec!["tcp-echo"],
        vec!["udp-pinger", "--server", "127.0.0.1:9"],
        vec!["web-server", "--server", "127.0.0.1:9"],
        vec!["smtp-client", "--server", "127.0.0.1:9"],
        vec!["heartbeat-server", "--server", "127.0.0.1:9"],
        vec!["no-such-lab", "--server", "127.0.0.1:9"],
    ] {
        let run = check(&args);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("error"), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn a_program_that_never_listens_is_reported_and_stopped_with_its_children() {
    let dir = std::env::temp_dir().join(format!("check-group-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pidfile = dir.join("pid");
    // The command starts a child of its own, then never listens on {port}.
    let cmd = format!("sleep 60 & echo $! > {}; sleep 60", pidfile.display());
    let json = dir.join("report.json").display().to_string();
    let run = check(&[
        "tcp-echo",
        "--exec",
        &cmd,
        "--start-timeout",
        "1s",
        "--json",
        &json,
    ]);
    // A grading loop still gets a report, with the reason and a score of 0.
    let report = std::fs::read_to_string(&json).unwrap_or_default();
    assert!(report.contains("\"error\":\"'sleep 60 &"), "{report}");
    assert!(
        report.contains("\"passed\":0,\"total\":8,\"points\":0,\"max_points\":11"),
        "{report}"
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("did not accept"), "{}", run.stderr);
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    let pid = std::fs::read_to_string(&pidfile).expect("the child's pid");
    let _ = std::fs::remove_dir_all(&dir);
    // SIGKILL is delivered at once, but the orphan is reaped by init a
    // moment later: gone, or a zombie (Z in /proc/PID/stat, Linux), within 5 s.
    let pid = pid.trim().to_string();
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next());
        if stat.is_empty() || state == Some("Z") {
            break;
        }
        assert!(
            Instant::now() < end,
            "the command's child {pid} outlived check: {stat}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_running_web_server_gets_its_test_files_in_dir() {
    if !have_tool("python3") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("check-www-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let dir_text = dir.display().to_string();
    let server = Server::start(
        "python3",
        &[&format!("{FIXTURES}/web_server.py"), "0", &dir_text],
    );
    let run = check(&[
        "web-server",
        "--server",
        &server.addr.to_string(),
        "--dir",
        &dir_text,
        "--timeout",
        "5s",
    ]);
    let written = dir.join("check-page.html").exists();
    let _ = std::fs::remove_dir_all(&dir);
    assert_all_pass(&run);
    assert!(written, "check did not write its files into --dir");
}

#[test]
fn json_to_stdout_replaces_the_lines() {
    let run = check(&[
        "udp-echo",
        "--exec",
        &format!("{UDP_SERVER} --bind 127.0.0.1 --port {{port}} --quiet"),
        "--json",
        "-",
        "--seed",
        "3",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.starts_with("{\"lab\":\"udp-echo\""),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("PASS  "), "{}", run.stdout);
    assert!(run.stdout.contains("\"result\":\"pass\""), "{}", run.stdout);
}

#[test]
fn batch_grades_every_submission_in_its_own_folder() {
    if !have_tool("python3") {
        return;
    }
    let root = std::env::temp_dir().join(format!("check-batch-{}", std::process::id()));
    for (student, program) in [
        ("alice", "tests/classic/TCPServer.py"),
        ("bob", "tests/check_fixtures/read_once_server.py"),
    ] {
        std::fs::create_dir_all(root.join(student)).expect("submission folder");
        std::fs::copy(program, root.join(student).join("server.py")).expect("copy the program");
    }
    let root_text = root.display().to_string();
    let run = check(&[
        "tcp-echo",
        "--batch",
        &root_text,
        "--exec",
        "python3 server.py {port}",
        "--seed",
        "5",
        "--timeout",
        "1500ms",
    ]);
    let bob_json = std::fs::read_to_string(root.join("bob").join("check.json")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&root);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stdout.contains("alice: score: 1/8 tests passed"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("bob: score: 4/8 tests passed"),
        "{}",
        run.stdout
    );
    assert!(bob_json.contains("\"seed\":5"), "{bob_json}");
}
