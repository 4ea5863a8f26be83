//! icmp_ping: the ICMP pinger (K&R assignment 5), an echo request built by hand.
//!
//! Below UDP and TCP sits IP, and next to it ICMP (RFC 792), the protocol
//! routers and hosts use to talk about IP itself: "echo request" (type 8)
//! and "echo reply" (type 0) are what `ping` sends and hears. This program
//! builds the 8-byte ICMP header itself (type, code, checksum, identifier,
//! sequence number), puts the send time in the payload, computes the
//! Internet checksum (RFC 1071) and sends it. The classic lab uses a raw
//! socket, which needs root. Linux (and macOS) also offer an ICMP "ping
//! socket", `socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)`, that any user in
//! the groups of `net.ipv4.ping_group_range` may open: the kernel lets it
//! send echo requests only, and hands it back only the replies to them.
//! That is the default here; `--raw` uses a raw socket (root) and also shows
//! the IP header each reply arrived with. ICMP errors about the requests
//! (Time Exceeded from a router when `--ttl` runs out, Destination
//! Unreachable) are read from the socket's error queue (IP_RECVERR) and
//! printed by type and code.
//!
//! Terminal 1: `cargo run --bin icmp_ping -- 127.0.0.1`
//!             (no partner program: the kernel of the host pinged answers)
//! Across a router: `sudo scripts/three_hosts.sh up`, then
//!             `sudo ip netns exec host-a target/debug/icmp_ping 10.20.2.2`
//!             `sudo ip netns exec host-a target/debug/icmp_ping --ttl 1 10.20.2.2`
//! Worksheet:  labs/09-icmp-traceroute.md (and traceroute, its partner)

// Linux only: the ping socket and the error queue (IP_RECVERR) it reads ICMP errors from are Linux's. On
// other systems the program still builds, and says so when run.
#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "error: icmp_ping runs on Linux only, and this is {}",
        std::env::consts::OS
    );
    eprintln!("hint: run it in WSL2 or a Linux VM; `ping` is this OS's own pinger");
    std::process::ExitCode::from(1)
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::mem;
    use std::net::Ipv4Addr;
    use std::os::fd::{AsRawFd, RawFd};
    use std::process::ExitCode;
    use std::thread;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use anyhow::Context;
    use clap::Parser;
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    use socketlab::cli;
    use socketlab::explain;
    use socketlab::rtt::{self, Stats};

    /// Ping a host with ICMP echo requests built by hand (K&R assignment 5), on a ping socket or --raw
    #[derive(Parser, Debug)]
    #[command(name = "icmp_ping", version)]
    struct Cli {
        /// The host to ping: an IPv4 address or a name
        host: String,

        /// How many echo requests to send
        #[arg(short = 'c', long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
        count: u16,

        /// Time from one request to the next
        #[arg(short = 'i', long, default_value = "1s", value_parser = cli::duration)]
        interval: Duration,

        /// How long to wait for each reply
        #[arg(short = 'W', long, default_value = "1s", value_parser = cli::positive_duration)]
        timeout: Duration,

        /// The requests' IP time to live; a router that brings it to 0 answers Time Exceeded [default: the system's, 64]
        #[arg(short = 't', long, value_parser = clap::value_parser!(u32).range(1..=255))]
        ttl: Option<u32>,

        /// Payload bytes after the 8-byte ICMP header (the first 16 are the send time)
        #[arg(short = 's', long, default_value_t = 56, value_parser = clap::value_parser!(u16).range(16..=1472))]
        size: u16,

        /// Use a raw socket (root or CAP_NET_RAW) instead of a ping socket, and show each reply's IP header
        #[arg(long)]
        raw: bool,
    }

    /// ICMP message types (RFC 792).
    const ECHO_REPLY: u8 = 0;
    const DESTINATION_UNREACHABLE: u8 = 3;
    const ECHO_REQUEST: u8 = 8;
    const TIME_EXCEEDED: u8 = 11;

    pub fn main() -> ExitCode {
        // `icmp_ping ... | head -3`: Rust ignores SIGPIPE, so printing after
        // head has gone would panic; restore the default, and the program ends
        // as ping and traceroute do when their reader goes away.
        // SAFETY: signal() with SIG_DFL, before any thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let cli = Cli::parse();
        explain::report(run(&cli))
    }

    fn run(cli: &Cli) -> anyhow::Result<()> {
        let target = resolve_ipv4(&cli.host)?;
        let socket = open_socket(cli.raw)?;
        if let Some(ttl) = cli.ttl {
            // setsockopt(IP_TTL): every request leaves with this TTL; each
            // router on the path takes one off and drops the packet at 0.
            socket
                .set_ttl_v4(ttl)
                .context("failed to set the TTL (setsockopt IP_TTL)")?;
        }
        if !cli.raw {
            ask_for_ttl_and_errors(socket.as_raw_fd())?;
        }
        ping(&socket, target, cli)
    }

    /// The first IPv4 address of `host`: ICMP here is ICMPv4 (ICMPv6 is another protocol).
    fn resolve_ipv4(host: &str) -> anyhow::Result<Ipv4Addr> {
        let addrs = cli::resolve(host, 0)?;
        addrs
            .iter()
            .find_map(|addr| match addr.ip() {
                std::net::IpAddr::V4(ip) => Some(ip),
                std::net::IpAddr::V6(_) => None,
            })
            .ok_or_else(|| {
                explain::hinted(
                    format!("'{host}' has no IPv4 address"),
                    "icmp_ping speaks ICMP for IPv4 (RFC 792); IPv6 has its own ICMPv6 (RFC 4443): \
                 give an IPv4 address such as 127.0.0.1",
                )
            })
    }

    /// socket(): a ping socket, `socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)`, or
    /// with --raw a raw socket, `socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)`.
    fn open_socket(raw: bool) -> anyhow::Result<Socket> {
        let kind = if raw { Type::RAW } else { Type::DGRAM };
        Socket::new(Domain::IPV4, kind, Some(Protocol::ICMPV4))
            .map_err(|err| socket_refused(raw, err))
    }

    /// The error and hint when the kernel refuses the socket.
    fn socket_refused(raw: bool, err: io::Error) -> anyhow::Error {
        let call = if raw {
            "socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)"
        } else {
            "socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)"
        };
        let message = format!("failed to open an ICMP socket with {call}: {err}");
        let hint = match (raw, err.raw_os_error()) {
            (true, Some(libc::EPERM | libc::EACCES)) => {
                "a raw socket sees every ICMP packet, so it needs root (or CAP_NET_RAW): run it \
             with sudo, or leave out --raw to use a ping socket"
                    .to_string()
            }
            (false, Some(libc::EACCES | libc::EPERM)) => ping_group_hint(),
            (false, Some(libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT | libc::ESOCKTNOSUPPORT)) => {
                "this kernel has no ICMP ping sockets (Linux and macOS have them; WSL1 and some \
             containers do not): run as root with --raw"
                    .to_string()
            }
            _ => format!("the OS said '{err}' at socket(); `man 7 icmp` describes ping sockets"),
        };
        explain::hinted(message, hint)
    }

    /// What to do when `net.ipv4.ping_group_range` leaves this user out: the
    /// kernel checks the process's group against the range, for root too.
    fn ping_group_hint() -> String {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
            .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".to_string());
        // SAFETY: getgid() cannot fail and touches no memory of ours.
        let gid = unsafe { libc::getgid() };
        format!(
            "ping sockets are allowed only to the groups in net.ipv4.ping_group_range, which is \
         \"{range}\" here, and your group {gid} is not in it (\"1 0\" allows nobody, root \
         included). Either allow every group: `sudo sysctl -w \
         net.ipv4.ping_group_range=\"0 2147483647\"`; or run as root with --raw; or, without \
         root, in a user+network namespace of your own: `unshare -rn sh -c 'ip link set lo up; \
         sysctl -w net.ipv4.ping_group_range=\"0 0\"; icmp_ping 127.0.0.1'` (it has only its \
         own loopback)"
        )
    }

    /// setsockopt() on a ping socket: IP_RECVTTL asks the kernel to attach each
    /// reply's TTL to it as a control message (read by recvmsg), and IP_RECVERR
    /// to queue the ICMP errors about our requests on the error queue, with
    /// their type, code and sender, instead of dropping them.
    fn ask_for_ttl_and_errors(fd: RawFd) -> anyhow::Result<()> {
        set_int_option(fd, libc::IP_RECVTTL, 1).context("failed to set IP_RECVTTL")?;
        set_int_option(fd, libc::IP_RECVERR, 1).context("failed to set IP_RECVERR")?;
        Ok(())
    }

    /// `setsockopt(fd, IPPROTO_IP, name, &value, sizeof(int))`. socket2 has no
    /// call for these two options, so libc makes the system call directly.
    fn set_int_option(fd: RawFd, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
        // SAFETY: `value` lives across the call and the length is its size.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_IP,
                name,
                (&raw const value).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// An echo request (RFC 792, "Echo or Echo Reply Message"):
    ///
    /// ```text
    ///  0        8        16                31
    /// | type 8 | code 0 |    checksum       |
    /// |    identifier   |  sequence number  |
    /// | payload: send time (8 bytes seconds, 8 bytes microseconds), then 0x10, 0x11, ...
    /// ```
    ///
    /// On a ping socket the kernel puts its own identifier in (the socket's
    /// "port") and so recomputes the checksum; on a raw socket both go on the
    /// wire exactly as built here.
    fn echo_request(identifier: u16, sequence: u16, size: usize, sent: Duration) -> Vec<u8> {
        let mut packet = vec![0u8; 8 + size];
        packet[0] = ECHO_REQUEST;
        packet[1] = 0; // code: always 0 for echo
        // packet[2..4], the checksum, stays 0 while the checksum is computed.
        packet[4..6].copy_from_slice(&identifier.to_be_bytes());
        packet[6..8].copy_from_slice(&sequence.to_be_bytes());
        packet[8..16].copy_from_slice(&sent.as_secs().to_be_bytes());
        packet[16..24].copy_from_slice(&u64::from(sent.subsec_micros()).to_be_bytes());
        for (i, byte) in packet[24..].iter_mut().enumerate() {
            *byte = 0x10u8.wrapping_add(i as u8); // ping's filler pattern
        }
        let checksum = internet_checksum(&packet);
        packet[2..4].copy_from_slice(&checksum.to_be_bytes());
        packet
    }

    /// The Internet checksum (RFC 1071): the ones' complement of the ones'
    /// complement sum of the 16-bit words (an odd last byte is padded with a
    /// zero). A receiver sums the whole message, checksum included, and gets 0
    /// if nothing changed on the way.
    fn internet_checksum(bytes: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in bytes.chunks(2) {
            let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
            sum += u32::from(word);
            // Fold the carry back in as it appears ("end-around carry").
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// Wall-clock time since 1970, the timestamp ping puts in its payload.
    fn now_since_epoch() -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }

    /// What arrived for the pinger.
    enum Event {
        Reply(Reply),
        /// An ICMP error about request `sequence`, sent by `from`.
        Error {
            sequence: u16,
            from: Ipv4Addr,
            icmp_type: u8,
            code: u8,
        },
        /// Something else: a raw socket sees every ICMP packet (our own request
        /// on loopback, other programs' pings); it is not ours.
        NotOurs,
    }

    struct Reply {
        sequence: u16,
        from: Ipv4Addr,
        /// ICMP bytes (header and payload), as ping counts them.
        len: usize,
        ttl: Option<u8>,
        /// The send time the request carried, echoed back in the payload.
        sent: Option<Duration>,
        checksum_ok: bool,
        /// With --raw, the reply's IP header, described.
        ip_header: Option<String>,
    }

    /// The K&R pinger: `count` requests, a line for each answer, then ping's summary.
    fn ping(socket: &Socket, target: Ipv4Addr, cli: &Cli) -> anyhow::Result<()> {
        let identifier = (std::process::id() & 0xffff) as u16;
        let size = usize::from(cli.size);
        println!(
            "PING {} ({target}) {size}({}) bytes of data, {} socket.",
            cli.host,
            size + 8 + 20,
            if cli.raw { "raw" } else { "ping" }
        );
        let mut stats = Stats::default();
        let started = Instant::now();
        for sequence in 1..=cli.count {
            let sent_at = Instant::now();
            let request = echo_request(identifier, sequence, size, now_since_epoch());
            send_request(socket, &request, target)?;
            stats.sent();
            await_answer(
                socket,
                cli,
                identifier,
                sequence,
                sent_at + cli.timeout,
                &mut stats,
            )?;
            if sequence < cli.count {
                thread::sleep(cli.interval.saturating_sub(sent_at.elapsed()));
            }
        }
        println!("\n{}", stats.ping_summary(&cli.host, started.elapsed()));
        if stats.received_count() > 0 {
            return Ok(());
        }
        Err(explain::hinted(
            format!(
                "none of the {} echo requests to {target} was answered",
                cli.count
            ),
            no_reply_hint(&stats, cli.ttl),
        ))
    }

    /// sendto(): the destination is an IP address only; ICMP has no ports.
    /// An ICMP error that arrived while nobody waited also sets the socket's
    /// pending error (`sk_err`), which the next call returns once instead of
    /// sending; its details stay on the error queue, read at the next wait. So
    /// a send that fails with such an errno is tried once more.
    fn send_request(socket: &Socket, request: &[u8], target: Ipv4Addr) -> anyhow::Result<()> {
        let to = SockAddr::from(std::net::SocketAddrV4::new(target, 0));
        let reported_earlier = |err: &io::Error| {
            matches!(
                err.raw_os_error(),
                Some(libc::EHOSTUNREACH | libc::ENETUNREACH | libc::ECONNREFUSED | libc::EPROTO)
            )
        };
        let sent = match socket.send_to(request, &to) {
            Err(err) if reported_earlier(&err) => socket.send_to(request, &to),
            other => other,
        };
        sent.with_context(|| format!("failed to send the echo request to {target} (sendto)"))
            .map_err(|e| send_hint(e, target))?;
        Ok(())
    }

    fn send_hint(err: anyhow::Error, target: Ipv4Addr) -> anyhow::Error {
        let io = err.chain().find_map(|e| e.downcast_ref::<io::Error>());
        let hint = match io.and_then(io::Error::raw_os_error) {
        Some(libc::ENETUNREACH) => format!(
            "this host has no route to {target} (`ip route` shows the routes): the request never left"
        ),
        Some(libc::EACCES) => "sending to a broadcast address needs SO_BROADCAST, which ping sockets refuse: ping one host".to_string(),
        _ => "sendto() failed before anything went on the wire; `man 7 icmp`".to_string(),
    };
        explain::hinted(format!("{err:#}"), hint)
    }

    fn no_reply_hint(stats: &Stats, ttl: Option<u32>) -> String {
        if stats.errors() > 0 {
            return match ttl {
                Some(ttl) => format!(
                    "ICMP errors came back instead of replies (above): with --ttl {ttl} the requests \
                 died on the way; a larger --ttl reaches further (traceroute does this hop by hop)"
                ),
                None => "ICMP errors came back instead of replies (above): a router or the host \
                     says why the requests were not delivered"
                    .to_string(),
            };
        }
        "no echo reply and no ICMP error at all: the host is down or unreachable, or a firewall \
     drops ICMP on the way (one that rejects would have answered 'prohibited'), or --timeout \
     is too short for this path"
            .to_string()
    }

    /// Waits until `deadline` for the answer to request `sequence`: an echo
    /// reply or an ICMP error. Earlier requests' late replies are shown and
    /// skipped, with the deadline kept.
    fn await_answer(
        socket: &Socket,
        cli: &Cli,
        identifier: u16,
        sequence: u16,
        deadline: Instant,
        stats: &mut Stats,
    ) -> anyhow::Result<()> {
        loop {
            let event = match wait_readable(socket.as_raw_fd(), deadline)? {
                Ready::Nothing => {
                    println!(
                        "no answer to icmp_seq={sequence} within {}",
                        humantime::format_duration(cli.timeout)
                    );
                    return Ok(());
                }
                Ready::Error => read_error(socket.as_raw_fd())?,
                Ready::Data if cli.raw => read_raw(socket.as_raw_fd(), identifier)?,
                Ready::Data => read_reply(socket.as_raw_fd())?,
            };
            match event {
                Event::Reply(reply) => {
                    let rtt = reply
                        .sent
                        .map(|sent| now_since_epoch().saturating_sub(sent))
                        .unwrap_or_default();
                    print_reply(&reply, rtt, reply.sequence != sequence);
                    if reply.sequence == sequence {
                        stats.received(rtt);
                        return Ok(());
                    }
                }
                Event::Error {
                    sequence: seq,
                    from,
                    icmp_type,
                    code,
                } => {
                    println!(
                        "From {from} icmp_seq={seq} {} (type {icmp_type}, code {code})",
                        icmp_error_name(icmp_type, code)
                    );
                    // ping counts every error, for whichever request it came.
                    stats.error();
                    if seq == sequence {
                        return Ok(());
                    }
                }
                Event::NotOurs => {}
            }
        }
    }

    /// One reply's line, as ping prints it; `late` marks the reply to an
    /// earlier request whose wait had already ended (not counted as received).
    fn print_reply(reply: &Reply, rtt: Duration, late: bool) {
        let ttl = reply.ttl.map(|t| format!(" ttl={t}")).unwrap_or_default();
        let bad = if reply.checksum_ok {
            ""
        } else {
            " (BAD CHECKSUM)"
        };
        let late = if late { " (late: not counted)" } else { "" };
        println!(
            "{} bytes from {}: icmp_seq={}{ttl} time={}{bad}{late}",
            reply.len,
            reply.from,
            reply.sequence,
            rtt::ms(rtt)
        );
        if let Some(header) = &reply.ip_header {
            println!("    {header}");
        }
    }

    /// What ping calls each ICMP error (RFC 792; code 13 from RFC 1812).
    fn icmp_error_name(icmp_type: u8, code: u8) -> String {
        match (icmp_type, code) {
            (DESTINATION_UNREACHABLE, 0) => "Destination Net Unreachable".into(),
            (DESTINATION_UNREACHABLE, 1) => "Destination Host Unreachable".into(),
            (DESTINATION_UNREACHABLE, 2) => "Destination Protocol Unreachable".into(),
            (DESTINATION_UNREACHABLE, 3) => "Destination Port Unreachable".into(),
            (DESTINATION_UNREACHABLE, 4) => "Frag needed and DF set".into(),
            (DESTINATION_UNREACHABLE, 9 | 10 | 13) => {
                "Packet filtered (administratively prohibited)".into()
            }
            (TIME_EXCEEDED, 0) => "Time to live exceeded".into(),
            (TIME_EXCEEDED, 1) => "Frag reassembly time exceeded".into(),
            (t, c) => format!("ICMP type {t} code {c}"),
        }
    }

    enum Ready {
        Data,
        Error,
        Nothing,
    }

    /// poll(2) until a reply is queued (POLLIN), an ICMP error is on the error
    /// queue (POLLERR, always reported), or `deadline` passes.
    fn wait_readable(fd: RawFd, deadline: Instant) -> anyhow::Result<Ready> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Ready::Nothing);
            }
            let mut pollfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let millis = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
            // SAFETY: one valid pollfd, and its count is 1.
            let rc = unsafe { libc::poll(&mut pollfd, 1, millis) };
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err).context("failed to wait for a reply (poll)");
            }
            if pollfd.revents & libc::POLLERR != 0 {
                return Ok(Ready::Error);
            }
            if pollfd.revents & libc::POLLIN != 0 {
                return Ok(Ready::Data);
            }
        }
    }

    /// A reply on a ping socket: recvmsg() gives the ICMP message without its
    /// IP header, and the TTL as a control message (IP_RECVTTL).
    fn read_reply(fd: RawFd) -> anyhow::Result<Event> {
        let mut buf = [0u8; 2048];
        let msg = recvmsg(fd, &mut buf, 0).context("failed to receive an echo reply (recvmsg)")?;
        let icmp = &buf[..msg.len];
        let ttl = msg
            .control
            .iter()
            .find(|c| c.level == libc::IPPROTO_IP && c.kind == libc::IP_TTL)
            .and_then(|c| c.data.get(..4))
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as u8);
        Ok(parse_reply(icmp, msg.from, ttl, None).map_or(Event::NotOurs, Event::Reply))
    }

    /// An echo reply's fields, if `icmp` is one (type 0, at least the timestamp).
    fn parse_reply(
        icmp: &[u8],
        from: Ipv4Addr,
        ttl: Option<u8>,
        ip_header: Option<String>,
    ) -> Option<Reply> {
        if icmp.len() < 8 || icmp[0] != ECHO_REPLY {
            return None;
        }
        // The payload comes from the network: nonsense in it must not panic
        // (an RTT from a time in the future saturates to 0).
        let sent = icmp.get(8..24).and_then(|stamp| {
            let secs = u64::from_be_bytes(stamp[..8].try_into().expect("8 bytes"));
            let micros = u64::from_be_bytes(stamp[8..].try_into().expect("8 bytes"));
            Duration::from_secs(secs).checked_add(Duration::from_micros(micros.min(999_999)))
        });
        Some(Reply {
            sequence: u16::from_be_bytes([icmp[6], icmp[7]]),
            from,
            len: icmp.len(),
            ttl,
            sent,
            checksum_ok: internet_checksum(icmp) == 0,
            ip_header,
        })
    }

    /// A packet on a raw socket: the whole IP datagram, header first. Ours are
    /// echo replies with our identifier, and ICMP errors that quote our request.
    fn read_raw(fd: RawFd, identifier: u16) -> anyhow::Result<Event> {
        let mut buf = [0u8; 2048];
        let msg =
            recvmsg(fd, &mut buf, 0).context("failed to receive on the raw socket (recvmsg)")?;
        let packet = &buf[..msg.len];
        let Some((header_len, ttl, header)) = ip_header(packet) else {
            return Ok(Event::NotOurs);
        };
        let icmp = &packet[header_len..];
        match icmp.first().copied() {
            Some(ECHO_REPLY) if icmp.get(4..6) == Some(&identifier.to_be_bytes()[..]) => {
                Ok(parse_reply(icmp, msg.from, Some(ttl), Some(header))
                    .map_or(Event::NotOurs, Event::Reply))
            }
            Some(icmp_type @ (DESTINATION_UNREACHABLE | TIME_EXCEEDED)) => {
                // The error quotes the IP header and first 8 bytes of our request.
                let quoted = icmp.get(8..).and_then(|q| Some(&q[ip_header(q)?.0..]));
                match quoted {
                    Some(req)
                        if req.len() >= 8
                            && req[0] == ECHO_REQUEST
                            && req[4..6] == identifier.to_be_bytes() =>
                    {
                        Ok(Event::Error {
                            sequence: u16::from_be_bytes([req[6], req[7]]),
                            from: msg.from,
                            icmp_type,
                            code: icmp.get(1).copied().unwrap_or(0),
                        })
                    }
                    _ => Ok(Event::NotOurs),
                }
            }
            _ => Ok(Event::NotOurs),
        }
    }

    /// The IPv4 header (RFC 791 §3.1) at the start of `packet`: its length
    /// (IHL, in 32-bit words), the TTL, and a line describing it.
    fn ip_header(packet: &[u8]) -> Option<(usize, u8, String)> {
        let first = *packet.first()?;
        let header_len = usize::from(first & 0x0f) * 4;
        if first >> 4 != 4 || header_len < 20 || packet.len() < header_len {
            return None;
        }
        let ttl = packet[8];
        let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
        let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
        let line = format!(
            "IP header: version 4, header {header_len} bytes, total {} bytes, id {}, ttl {ttl}, protocol {} (ICMP), checksum {:#06x}, {src} -> {dst}",
            u16::from_be_bytes([packet[2], packet[3]]),
            u16::from_be_bytes([packet[4], packet[5]]),
            packet[9],
            u16::from_be_bytes([packet[10], packet[11]]),
        );
        Some((header_len, ttl, line))
    }

    /// An ICMP error from the error queue of a ping socket (IP_RECVERR):
    /// recvmsg(MSG_ERRQUEUE) returns our own request as the data (so its
    /// sequence number says which request failed) and a control message
    /// (IPPROTO_IP, IP_RECVERR) holding a `struct sock_extended_err`: where the
    /// error came from (SO_EE_ORIGIN_ICMP), the ICMP type and code, and right
    /// after it the address of the host or router that sent it (SO_EE_OFFENDER).
    fn read_error(fd: RawFd) -> anyhow::Result<Event> {
        let mut buf = [0u8; 2048];
        let msg = recvmsg(fd, &mut buf, libc::MSG_ERRQUEUE)
            .context("failed to read the error queue (recvmsg MSG_ERRQUEUE)")?;
        let request = &buf[..msg.len];
        let Some(err) = msg
            .control
            .iter()
            .find(|c| c.level == libc::IPPROTO_IP && c.kind == libc::IP_RECVERR)
        else {
            return Ok(Event::NotOurs);
        };
        let ee_size = mem::size_of::<libc::sock_extended_err>();
        if err.data.len() < ee_size || request.len() < 8 {
            return Ok(Event::NotOurs);
        }
        // SAFETY: at least size_of::<sock_extended_err>() bytes, read unaligned.
        let ee: libc::sock_extended_err =
            unsafe { std::ptr::read_unaligned(err.data.as_ptr().cast()) };
        if ee.ee_origin != libc::SO_EE_ORIGIN_ICMP {
            return Ok(Event::NotOurs); // a local error (say, a too-big message), not from the wire
        }
        Ok(Event::Error {
            sequence: u16::from_be_bytes([request[6], request[7]]),
            from: offender(&err.data[ee_size..]).unwrap_or(Ipv4Addr::UNSPECIFIED),
            icmp_type: ee.ee_type,
            code: ee.ee_code,
        })
    }

    /// SO_EE_OFFENDER: the `struct sockaddr_in` after the sock_extended_err.
    fn offender(bytes: &[u8]) -> Option<Ipv4Addr> {
        if bytes.len() < mem::size_of::<libc::sockaddr_in>() {
            return None;
        }
        // SAFETY: enough bytes for a sockaddr_in, read unaligned.
        let addr: libc::sockaddr_in = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        (i32::from(addr.sin_family) == libc::AF_INET)
            .then(|| Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)))
    }

    /// One control message (`struct cmsghdr`) from recvmsg().
    struct Control {
        level: libc::c_int,
        kind: libc::c_int,
        data: Vec<u8>,
    }

    struct Message {
        len: usize,
        from: Ipv4Addr,
        control: Vec<Control>,
    }

    /// recvmsg(2): a datagram into `buf`, who sent it, and the control messages
    /// the socket options asked for. socket2 has no control-message API, so
    /// this is the C call through libc.
    fn recvmsg(fd: RawFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<Message> {
        // SAFETY: all-zero is a valid sockaddr_in and msghdr.
        let mut from: libc::sockaddr_in = unsafe { mem::zeroed() };
        let mut control = [0u64; 64]; // 512 bytes, aligned as a cmsghdr must be
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = (&raw mut from).cast();
        msg.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = mem::size_of_val(&control) as _;
        // SAFETY: every pointer in msg points at a live buffer of the stated size.
        let len = unsafe { libc::recvmsg(fd, &mut msg, flags) };
        if len < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut found = Vec::new();
        // SAFETY: the CMSG_* macros walk the control buffer the kernel filled,
        // within msg_controllen.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                let data = libc::CMSG_DATA(cmsg);
                let header = data as usize - cmsg as usize;
                let data_len = ((*cmsg).cmsg_len as usize).saturating_sub(header);
                found.push(Control {
                    level: (*cmsg).cmsg_level,
                    kind: (*cmsg).cmsg_type,
                    data: std::slice::from_raw_parts(data, data_len).to_vec(),
                });
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        Ok(Message {
            len: len as usize,
            from: Ipv4Addr::from(u32::from_be(from.sin_addr.s_addr)),
            control: found,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn checksum_is_rfc1071s_worked_example() {
            // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2; the checksum is its complement.
            assert_eq!(
                internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
                !0xddf2
            );
            // An odd length pads the last byte with a zero.
            assert_eq!(internet_checksum(&[0x01]), !0x0100);
            // Carries fold back in: ffff + 0001 = 1_0000 -> 0001.
            assert_eq!(internet_checksum(&[0xff, 0xff, 0x00, 0x01]), !0x0001);
        }

        #[test]
        fn a_request_sums_to_zero_and_carries_its_fields() {
            let sent = Duration::new(1_700_000_000, 123_456_000);
            let packet = echo_request(0x1234, 7, 56, sent);
            assert_eq!(packet.len(), 64);
            assert_eq!(&packet[..2], &[8, 0]);
            assert_eq!(&packet[4..8], &[0x12, 0x34, 0, 7]);
            assert_eq!(internet_checksum(&packet), 0, "a receiver's check");
            // The same bytes as an echo reply: type 0, and the timestamp comes back.
            let mut reply = packet.clone();
            reply[0] = ECHO_REPLY;
            reply[2..4].copy_from_slice(&[0, 0]);
            let sum = internet_checksum(&reply);
            reply[2..4].copy_from_slice(&sum.to_be_bytes());
            let parsed = parse_reply(&reply, Ipv4Addr::LOCALHOST, Some(64), None).expect("a reply");
            assert_eq!(parsed.sequence, 7);
            assert_eq!(parsed.sent, Some(sent));
            assert!(parsed.checksum_ok);
            // A flipped bit is caught; a request or a short packet is no reply.
            reply[30] ^= 1;
            assert!(
                !parse_reply(&reply, Ipv4Addr::LOCALHOST, None, None)
                    .expect("a reply")
                    .checksum_ok
            );
            assert!(parse_reply(&packet, Ipv4Addr::LOCALHOST, None, None).is_none());
            assert!(parse_reply(&[0, 0, 0], Ipv4Addr::LOCALHOST, None, None).is_none());
            // Bad input: a timestamp at the end of time: no panic, an RTT of 0.
            let mut nonsense = vec![0u8; 24];
            nonsense[8..24].fill(0xff);
            let parsed = parse_reply(&nonsense, Ipv4Addr::LOCALHOST, None, None).expect("a reply");
            let sent = parsed.sent.expect("a timestamp");
            assert_eq!(now_since_epoch().saturating_sub(sent), Duration::ZERO);
        }

        #[test]
        fn ip_header_is_read_or_refused() {
            let mut header = [0u8; 20];
            header[0] = 0x45;
            header[8] = 63;
            header[9] = 1;
            header[12..16].copy_from_slice(&[10, 20, 2, 2]);
            let (len, ttl, line) = ip_header(&header).expect("a header");
            assert_eq!((len, ttl), (20, 63));
            assert!(line.contains("10.20.2.2 -> 0.0.0.0"), "{line}");
            // IPv6, an IHL below 5, a truncated header, nothing at all.
            assert!(ip_header(&[0x60; 40]).is_none());
            assert!(ip_header(&[0x44; 20]).is_none());
            assert!(ip_header(&header[..10]).is_none());
            assert!(ip_header(&[]).is_none());
        }

        #[test]
        fn errors_are_named_like_ping() {
            assert_eq!(icmp_error_name(11, 0), "Time to live exceeded");
            assert_eq!(icmp_error_name(3, 3), "Destination Port Unreachable");
            assert_eq!(icmp_error_name(3, 1), "Destination Host Unreachable");
            assert_eq!(icmp_error_name(42, 9), "ICMP type 42 code 9");
        }
    }
}
