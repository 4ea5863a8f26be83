//! Turning a failed socket call into an explanation a student can act on.
//! Used by every program.
//!
//! Every socket call a user can make fail gets a [`Step`] as its `anyhow`
//! context (`.context(Step::Bind(Proto::Udp, addr))`), naming the
//! call and its address. [`report`] prints one `error:` line with the whole
//! cause chain (the step, then the OS's own words) and one `hint:` line that
//! says what happened on the wire and what to try next.

use std::fmt;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::process::ExitCode;

use ErrorKind::*;
use Proto::{Tcp, Udp};

/// The transport protocol a socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if *self == Tcp { "TCP" } else { "UDP" })
    }
}

/// The socket call that failed (the context [`report`] explains), with its protocol and the local
/// address (`Bind`), the server's (`Connect`) or the peer's (`Send`, `Receive`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `getaddrinfo()`: turning a host name into addresses (DNS, /etc/hosts).
    Resolve(String),
    /// `bind()`: claiming a local address and port (a server's `--port`).
    Bind(Proto, SocketAddr),
    /// `bind()` of a client socket to the fixed source port given with
    /// `--bind-port` (K&R P29), instead of letting the OS pick one.
    BindClient(Proto, SocketAddr),
    /// `connect()`: TCP's three-way handshake, or fixing a UDP socket's peer.
    Connect(Proto, SocketAddr),
    /// `accept()`: taking the next connection from the listen queue.
    Accept,
    /// `send()`, `sendto()` or `write()`.
    Send(Proto, SocketAddr),
    /// `recv()`, `recvfrom()` or `read()`: waiting for the peer's reply.
    Receive(Proto, SocketAddr),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("failed to ")?;
        match self {
            Step::Resolve(host) => write!(f, "resolve host '{host}'"),
            Step::Bind(proto, addr) | Step::BindClient(proto, addr) => {
                write!(f, "bind {proto} socket to {addr}")
            }
            Step::Connect(proto, addr) => write!(f, "connect {proto} socket to {addr}"),
            Step::Accept => write!(f, "accept a connection"),
            Step::Send(proto, peer) => write!(f, "send to {peer} over {proto}"),
            Step::Receive(proto, peer) => write!(f, "receive a reply from {peer} over {proto}"),
        }
    }
}

/// The system call behind a step, for `man 2 <call>`.
fn syscall(step: &Step) -> &'static str {
    match step {
        Step::Resolve(..) => "getaddrinfo",
        Step::Bind(..) | Step::BindClient(..) => "bind",
        Step::Connect(..) => "connect",
        Step::Accept => "accept",
        Step::Send(..) => "send",
        Step::Receive(..) => "recv",
    }
}

/// True when a read's timeout expired: `EAGAIN` ("would block") on Unix, `WSAETIMEDOUT` on Windows.
pub fn is_timeout(err: &io::Error) -> bool {
    matches!(err.kind(), WouldBlock | TimedOut)
}

/// The one-line hint for `err`, which the OS returned at `step`.
pub fn hint(step: &Step, err: &io::Error) -> String {
    let kind = err.kind();
    match step {
        Step::Resolve(host) => format!(
            "the name '{host}' could not be turned into an IP address (DNS or /etc/hosts): \
             check the spelling, or give an address such as 127.0.0.1"
        ),
        Step::Bind(proto, addr) | Step::BindClient(proto, addr) => match kind {
            AddrInUse => in_use(step, *proto, addr.port()),
            AddrNotAvailable => format!(
                "{ip} is not an address of this machine: bind to 0.0.0.0 (every interface) \
                 or 127.0.0.1 (loopback only); `ip addr` (Linux), `ifconfig` (macOS) or \
                 `ipconfig` (Windows) lists this machine's addresses",
                ip = addr.ip()
            ),
            // WSAEACCES (10013): Windows has no privileged ports, but reserves ranges.
            PermissionDenied if cfg!(windows) => "Windows reserves some ports (Hyper-V, WSL): \
                 `netsh interface ipv4 show excludedportrange protocol=tcp` lists them; choose \
                 another --port"
                .to_string(),
            PermissionDenied if addr.port() < 1024 && addr.port() != 0 => format!(
                "ports below 1024 are privileged: binding port {port} needs root (or \
                 CAP_NET_BIND_SERVICE, or a lower net.ipv4.ip_unprivileged_port_start); use a \
                 port of 1024 or more",
                port = addr.port()
            ),
            _ => by_kind(step, err),
        },
        Step::Connect(Tcp, addr) if kind == ConnectionRefused => format!(
            "{ip} answered the SYN with a RST: no program is listening on TCP port {port} there \
             (Linux and macOS say so at once, Windows as 10061 after retrying the SYN for \
             about 2 s). Start the server first, and check that both sides use the same port",
            ip = addr.ip(),
            port = addr.port()
        ),
        Step::Connect(Tcp, addr) if is_timeout(err) => format!(
            "no answer to the SYN at all: {ip} is down or unreachable, or a firewall drops \
             the packets (a firewall that rejects them would have made this 'refused'), \
             or --timeout is too short for this path",
            ip = addr.ip()
        ),
        Step::Receive(Udp, peer) if is_timeout(err) => format!(
            "no reply at all before the timeout ({TIMEOUT_NAMES}). Over UDP that means no \
             server on {peer}, the wrong host or port, a firewall that drops, or a lost \
             datagram; on Linux and macOS an unconnected UDP socket never hears the ICMP port \
             unreachable that a missing server causes (a connected one does; Windows reports \
             it to both, as 10054)"
        ),
        Step::Receive(Udp, peer) if kind == ConnectionRefused => format!(
            "an ICMP port unreachable came back: no program has UDP port {port} open on {ip}. \
             A connected UDP socket reports it as 'connection refused'; start the server first, \
             or check the port",
            ip = peer.ip(),
            port = peer.port()
        ),
        Step::Receive(Udp, peer) if kind == ConnectionReset => format!(
            "an ICMP port unreachable came back from {peer}: Windows reports it on a UDP \
             socket as WSAECONNRESET (10054), 'connection reset'; start the server first, or \
             check the port"
        ),
        Step::Receive(Tcp, peer) if is_timeout(err) => format!(
            "connected to {peer}, but nothing came back before the timeout ({TIMEOUT_NAMES}): \
             the server may still be waiting for the rest of the message, or it is busy; try a \
             longer --timeout"
        ),
        Step::Send(Udp, peer) if kind == ConnectionRefused => format!(
            "an earlier datagram to {peer} was answered by an ICMP port unreachable, and a \
             connected UDP socket reports it on its next call: no program has that port open"
        ),
        Step::Send(..) if err.raw_os_error() == Some(EMSGSIZE) => "the datagram did not \
             fit: sendto() refuses one longer than the OS sends (65507 bytes over IPv4; macOS \
             caps UDP at 9216 unless `sudo sysctl -w net.inet.udp.maxdgram=65535`), and on \
             Windows recvfrom() refuses one longer than its buffer (10040, WSAEMSGSIZE)"
            .to_string(),
        Step::Send(..) if kind == PermissionDenied => "the OS refused to send the packet: \
             a local firewall rule rejects it, or the address is a broadcast address"
            .to_string(),
        _ => by_kind(step, err),
    }
}

const TIMEOUT_NAMES: &str = "EAGAIN on Linux and macOS, WSAETIMEDOUT 10060 on Windows";

/// EMSGSIZE (Linux 90, macOS 40) or WSAEMSGSIZE (10040): a datagram too long.
const EMSGSIZE: i32 = if cfg!(windows) { 10040 } else { libc::EMSGSIZE };

/// The command that names the program holding `port`, on this OS.
fn who_holds(proto: Proto, port: u16) -> String {
    let p = if proto == Tcp { 't' } else { 'u' };
    if cfg!(windows) {
        format!("`netstat -ano -p {proto} | findstr :{port}` names its PID")
    } else if cfg!(target_os = "macos") {
        format!("`lsof -nP -i {proto}:{port}` names it")
    } else {
        format!("`ss -{p}lnp | grep :{port}` names it")
    }
}

/// The hint for `EADDRINUSE` at `bind()`: who may hold the port, how to see it, what to change.
fn in_use(step: &Step, proto: Proto, port: u16) -> String {
    let who = who_holds(proto, port);
    let holder = match proto {
        // `ss -l` lists listening sockets only; after a server stops, its
        // connections linger in TIME_WAIT (twice the maximum segment
        // lifetime, 60 s on Linux) and block a bind() without SO_REUSEADDR.
        Tcp => format!(
            "another socket already holds TCP port {port}: a program listening on it \
             ({who}) or, if that lists nothing, the connections of a server that just \
             stopped, waiting out TIME_WAIT (60 s on Linux, where `ss -tan state time-wait | \
             grep :{port}` lists them; 30 s on macOS, up to 2 min on Windows). Stop that \
             program or wait"
        ),
        Udp => format!("another socket already holds UDP port {port} ({who}). Stop that program"),
    };
    let choose = match step {
        Step::BindClient(..) => "--bind-port (without --bind-port the OS picks a free one)",
        _ => "--port (0 lets the OS pick a free one)",
    };
    format!("{holder}, or choose another {choose}")
}

/// Hints that depend only on what the OS said, whatever the step.
fn by_kind(step: &Step, err: &io::Error) -> String {
    match err.kind() {
        ConnectionRefused => {
            "the peer refused: for TCP it answered with a RST, for a connected UDP socket an \
             ICMP port unreachable came back; nothing is listening on that port"
                .to_string()
        }
        ConnectionReset => "the peer sent a TCP RST: it closed the connection abruptly (it \
             crashed or was killed, or it closed with data still unread)"
            .to_string(),
        BrokenPipe => "the peer had already closed the connection (its FIN or RST arrived) \
             before this write"
            .to_string(),
        ConnectionAborted => "the connection was aborted on this machine before it was \
             accepted or finished (often a client that gave up and reset)"
            .to_string(),
        HostUnreachable | NetworkUnreachable => "no route to that address: a router answered \
             with an ICMP host or network unreachable, or this machine has no route to it \
             (check the address, and `ip route`, or `netstat -rn` on macOS, `route print` on \
             Windows)"
            .to_string(),
        UnexpectedEof => {
            "the peer closed the connection (FIN) before sending everything expected".to_string()
        }
        WouldBlock | TimedOut => "the operation gave up because its timeout expired (the OS \
             reports that as EAGAIN on Unix and WSAETIMEDOUT on Windows)"
            .to_string(),
        _ => format!(
            "the OS said '{err}' at {call}(); `man 2 {call}` lists what that error means there \
             (on Windows, Microsoft's list of Windows Sockets error codes)",
            call = syscall(step)
        ),
    }
}

/// A failure that is not an OS error (a message too long for UDP, stdin
/// that ended early, a peer speaking the wrong protocol), with its own hint.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Hinted {
    message: String,
    hint: String,
}

/// An error whose `error:` line is `message` and whose `hint:` line is `hint`.
pub fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    let (message, hint) = (message.into(), hint.into());
    anyhow::Error::new(Hinted { message, hint })
}

/// The largest UDP payload over IPv4: 65535 bytes minus the 20-byte IP and
/// 8-byte UDP headers. (IPv6 allows 65527; one limit keeps it simple.)
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// Refuses a message too long for one UDP datagram before `sendto()` would
/// (with EMSGSIZE, "message too long"), with a hint that says why.
pub fn check_datagram_len(len: usize) -> anyhow::Result<()> {
    if len <= MAX_UDP_PAYLOAD {
        return Ok(());
    }
    Err(hinted(
        format!(
            "message of {len} bytes is longer than the largest UDP datagram ({MAX_UDP_PAYLOAD} bytes)"
        ),
        "one UDP datagram carries at most 65507 bytes over IPv4 (65535 minus the IP and UDP \
         headers), and UDP never splits a message: send less, or use TCP (tcp_client), whose \
         byte stream carries any length",
    ))
}

/// Finds the step and the OS error in an error's cause chain and explains
/// them. An OS error with no step (writing to a closed stdout, say) gets no
/// hint: its own words are all that is known.
pub fn hint_for(err: &anyhow::Error) -> Option<String> {
    if let Some(hinted) = err.chain().find_map(|e| e.downcast_ref::<Hinted>()) {
        return Some(hinted.hint.clone());
    }
    let step = err.downcast_ref::<Step>()?;
    let io_err = err.chain().find_map(|e| e.downcast_ref::<io::Error>())?;
    Some(hint(step, io_err))
}

/// Ends a program: exit status 0 on success; otherwise prints `error:` with
/// the whole cause chain on one line, then `hint:`, and exits with status 1.
pub fn report(result: anyhow::Result<()>) -> ExitCode {
    let Err(err) = result else {
        return ExitCode::SUCCESS;
    };
    eprintln!("error: {err:#}");
    if let Some(hint) = hint_for(&err) {
        eprintln!("hint: {hint}");
    }
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn tcp_refused_names_the_rst() {
        let step = Step::Connect(Proto::Tcp, addr("127.0.0.1:12000"));
        let h = hint(&step, &io::Error::from(ErrorKind::ConnectionRefused));
        assert!(h.contains("answered the SYN with a RST"), "{h}");
        assert!(h.contains("port 12000"), "{h}");
    }

    #[test]
    fn udp_refused_names_the_icmp_port_unreachable() {
        let step = Step::Receive(Proto::Udp, addr("127.0.0.1:9"));
        let h = hint(&step, &io::Error::from(ErrorKind::ConnectionRefused));
        assert!(h.contains("ICMP port unreachable"), "{h}");
        assert!(h.contains("connected UDP socket"), "{h}");
    }

    #[test]
    fn udp_timeout_lists_the_causes_for_both_timeout_kinds() {
        let step = Step::Receive(Proto::Udp, addr("127.0.0.1:9"));
        for kind in [ErrorKind::WouldBlock, ErrorKind::TimedOut] {
            let h = hint(&step, &io::Error::from(kind));
            for cause in [
                "no server",
                "wrong host or port",
                "firewall",
                "lost datagram",
            ] {
                assert!(h.contains(cause), "{kind:?}: {h}");
            }
        }
    }

    #[test]
    fn windows_udp_reset_is_explained_as_port_unreachable() {
        let step = Step::Receive(Proto::Udp, addr("127.0.0.1:9"));
        let h = hint(&step, &io::Error::from(ErrorKind::ConnectionReset));
        assert!(
            h.contains("10054") && h.contains("ICMP port unreachable"),
            "{h}"
        );
    }

    #[test]
    fn tcp_timeouts_differ_between_connect_and_receive() {
        let peer = addr("10.0.0.1:80");
        let connect = hint(
            &Step::Connect(Proto::Tcp, peer),
            &io::Error::from(ErrorKind::TimedOut),
        );
        assert!(connect.contains("no answer to the SYN"), "{connect}");
        let receive = hint(
            &Step::Receive(Proto::Tcp, peer),
            &io::Error::from(ErrorKind::WouldBlock),
        );
        assert!(receive.contains("connected to 10.0.0.1:80"), "{receive}");
    }

    /// EMSGSIZE is 90 on Linux, 40 on macOS (where UDP sends stop at 9216
    /// bytes by default), WSAEMSGSIZE 10040 on Windows.
    #[test]
    fn a_datagram_too_long_for_this_os_names_the_limits() {
        let code = match std::env::consts::OS {
            "windows" => 10040,
            "linux" => 90,
            _ => 40,
        };
        let step = Step::Send(Proto::Udp, addr("127.0.0.1:9"));
        let h = hint(&step, &io::Error::from_raw_os_error(code));
        assert!(h.contains("9216") && h.contains("WSAEMSGSIZE"), "{h}");
    }

    #[test]
    fn bind_errors() {
        let step = |a: &str| Step::Bind(Proto::Udp, addr(a));
        let in_use = hint(
            &step("0.0.0.0:12000"),
            &io::Error::from(ErrorKind::AddrInUse),
        );
        assert!(
            in_use.contains("port 12000") && in_use.contains(&who_holds(Proto::Udp, 12000)),
            "{in_use}"
        );
        let tool = match std::env::consts::OS {
            "linux" => "`ss -ulnp | grep :12000`",
            "windows" => "`netstat -ano -p UDP | findstr :12000`",
            _ => "12000",
        };
        assert!(in_use.contains(tool), "{in_use}");
        assert!(in_use.contains("another --port"), "{in_use}");
        let not_here = hint(
            &step("192.0.2.7:12000"),
            &io::Error::from(ErrorKind::AddrNotAvailable),
        );
        assert!(
            not_here.contains("192.0.2.7 is not an address of this machine"),
            "{not_here}"
        );
        let privileged = hint(
            &step("0.0.0.0:80"),
            &io::Error::from(ErrorKind::PermissionDenied),
        );
        // WSAEACCES on Windows is a reserved range, not a privileged port.
        let why = if cfg!(windows) {
            "excludedportrange"
        } else {
            "below 1024"
        };
        assert!(privileged.contains(why), "{privileged}");
    }

    #[test]
    fn tcp_port_in_use_names_time_wait_too() {
        // `ss -tlnp` lists only listeners: after the classic TCPServer.py
        // stops, its TIME_WAIT connections hold the port for about 60 s.
        let step = Step::Bind(Proto::Tcp, addr("0.0.0.0:12000"));
        let h = hint(&step, &io::Error::from(ErrorKind::AddrInUse));
        for part in [
            &who_holds(Proto::Tcp, 12000),
            "TIME_WAIT",
            "ss -tan state time-wait | grep :12000",
            "another --port",
        ] {
            assert!(h.contains(part), "{part}: {h}");
        }
    }

    #[test]
    fn a_client_bound_port_in_use_names_bind_port_not_port() {
        // udp_client --bind-port 5432 while another socket holds 5432:
        // --port is the server's port there, changing it would not help.
        let step = Step::BindClient(Proto::Udp, addr("0.0.0.0:5432"));
        let err = Err::<(), _>(io::Error::from(ErrorKind::AddrInUse))
            .context(step)
            .expect_err("an error");
        assert!(
            format!("{err:#}").starts_with("failed to bind UDP socket to 0.0.0.0:5432"),
            "{err:#}"
        );
        let h = hint_for(&err).expect("a hint");
        assert!(h.contains("already holds UDP port 5432"), "{h}");
        assert!(h.contains("another --bind-port"), "{h}");
        assert!(!h.contains("--port"), "{h}");
    }

    #[test]
    fn reset_unreachable_and_resolution() {
        let peer = addr("127.0.0.1:12000");
        let step = Step::Send(Proto::Tcp, peer);
        let reset = hint(&step, &io::Error::from(ErrorKind::ConnectionReset));
        assert!(reset.contains("TCP RST"), "{reset}");
        let unreachable = hint(&step, &io::Error::from(ErrorKind::HostUnreachable));
        assert!(unreachable.contains("no route"), "{unreachable}");
        let resolve = Step::Resolve("no-such-host.invalid".into());
        let h = hint(&resolve, &io::Error::other("Name or service not known"));
        assert!(
            h.contains("'no-such-host.invalid' could not be turned into an IP address"),
            "{h}"
        );
    }

    #[test]
    fn unknown_errors_name_the_syscall() {
        let step = Step::Accept;
        let h = hint(&step, &io::Error::from_raw_os_error(24));
        assert!(h.contains("man 2 accept"), "{h}");
    }

    #[test]
    fn hint_for_finds_step_and_os_error_under_more_context() {
        let err = Err::<(), _>(io::Error::from(ErrorKind::ConnectionRefused))
            .context(Step::Connect(Proto::Tcp, addr("127.0.0.1:12000")))
            .context("tcp_client could not reach the server")
            .expect_err("an error");
        let h = hint_for(&err).expect("a hint");
        assert!(h.contains("RST"), "{h}");
        assert_eq!(
            format!("{err:#}"),
            "tcp_client could not reach the server: failed to connect TCP socket to \
             127.0.0.1:12000: connection refused"
        );
    }

    #[test]
    fn no_hint_without_a_step_or_an_own_hint() {
        let err = anyhow::anyhow!("invalid port 'abc'");
        assert_eq!(hint_for(&err), None);
        // Writing to a closed stdout is not a peer closing a connection.
        let err = anyhow::Error::new(io::Error::from(ErrorKind::BrokenPipe))
            .context("failed to write to stdout");
        assert_eq!(hint_for(&err), None);
    }

    #[test]
    fn datagrams_over_65507_bytes_are_refused_with_a_hint() {
        assert!(check_datagram_len(65_507).is_ok());
        let err = check_datagram_len(65_508).expect_err("too long");
        assert!(
            format!("{err:#}").contains("message of 65508 bytes"),
            "{err:#}"
        );
        assert!(
            hint_for(&err)
                .expect("a hint")
                .contains("UDP never splits a message")
        );
    }

    #[test]
    fn a_program_can_give_its_own_hint() {
        let err = hinted("message of 70000 bytes is too long", "send less").context("udp_client");
        assert_eq!(hint_for(&err).as_deref(), Some("send less"));
        assert_eq!(
            format!("{err:#}"),
            "udp_client: message of 70000 bytes is too long"
        );
    }
}
