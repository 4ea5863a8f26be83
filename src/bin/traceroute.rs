//! traceroute: the path to a host, one router at a time, read from ICMP errors.
//!
//! Every IP packet carries a time to live (TTL, RFC 791): each router on
//! the way takes 1 off, and the router that brings it to 0 drops the packet
//! and sends back an ICMP Time Exceeded (type 11, RFC 792) from its own
//! address. So a probe sent with TTL 1 names the first router, TTL 2 the
//! second, and so on, until a probe reaches the host itself. The probes are
//! UDP datagrams to a port nobody uses (33434 and up): the host answers
//! them with ICMP Port Unreachable (type 3, code 3), and that ends the
//! trace. Three probes per hop, each timed; a hop that answers none shows
//! "*". No raw socket and no root are needed: a plain UDP socket with the
//! option IP_RECVERR keeps the ICMP errors about its datagrams on an error
//! queue, which `recvmsg(..., MSG_ERRQUEUE)` reads, with the ICMP type,
//! code and the address of the router that sent it. `--icmp` probes with
//! echo requests on an ICMP ping socket instead (as `traceroute -I` and
//! Windows' tracert do), and ends at the host's echo reply.
//!
//! Set up a path with a router: `sudo scripts/three_hosts.sh up`, then
//! Terminal 1: `sudo ip netns exec router tcpdump -n -i r0 icmp or udp`
//! Terminal 2: `sudo ip netns exec host-a target/debug/traceroute 10.20.2.2`
//!             `sudo ip netns exec host-a target/debug/traceroute --icmp 10.20.2.2`
//! On this machine alone: `cargo run --bin traceroute -- 127.0.0.1` (one hop)
//! Worksheet:  labs/09-icmp-traceroute.md (icmp_ping is its partner)

// Linux only: the error queue (IP_RECVERR, MSG_ERRQUEUE) it reads ICMP errors from is Linux's. On
// other systems the program still builds, and says so when run.
#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "error: traceroute runs on Linux only, and this is {}",
        std::env::consts::OS
    );
    eprintln!(
        "hint: run it in WSL2 or a Linux VM; `tracert` (Windows) or `traceroute` (macOS) is this OS's own"
    );
    std::process::ExitCode::from(1)
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::mem;
    use std::mem::MaybeUninit;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
    use std::os::fd::{AsRawFd, RawFd};
    use std::process::ExitCode;
    use std::time::{Duration, Instant};

    use anyhow::Context;
    use clap::Parser;
    use socket2::{Domain, Protocol, Socket, Type};
    use socketlab::cli;
    use socketlab::explain::{self, Proto, Step};

    /// Show the routers on the way to a host: UDP probes with TTL 1, 2, 3... and the ICMP errors they raise
    #[derive(Parser, Debug)]
    #[command(name = "traceroute", version)]
    struct Cli {
        /// The host to trace the path to: an IPv4 address or a name
        host: String,

        /// Give up after this many hops
        #[arg(short = 'm', long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=255))]
        max_hops: u32,

        /// Probes per hop
        #[arg(short = 'q', long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
        queries: u32,

        /// The first UDP port probed; each probe uses the next one (as traceroute does)
        #[arg(short = 'p', long, default_value_t = 33434)]
        port: u16,

        /// How long to wait for the answer to each probe
        #[arg(short = 'w', long, default_value = "1s", value_parser = cli::positive_duration)]
        wait: Duration,

        /// Probe with ICMP echo requests on a ping socket instead of UDP datagrams
        #[arg(short = 'I', long)]
        icmp: bool,
    }

    /// ICMP types (RFC 792) and the Destination Unreachable codes traceroute marks.
    const ECHO_REPLY: u8 = 0;
    const DESTINATION_UNREACHABLE: u8 = 3;
    const PORT_UNREACHABLE: u8 = 3;

    /// Bytes of each UDP probe's payload: with the 8-byte UDP and 20-byte IP
    /// headers, the 60-byte packets traceroute sends.
    const PROBE_PAYLOAD: usize = 32;

    pub fn main() -> ExitCode {
        // `... | head -3`: Rust ignores SIGPIPE, so printing after
        // head has gone would panic; restore the default, and the program ends
        // as ping and traceroute do when their reader goes away.
        // SAFETY: signal() with SIG_DFL, before any thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let cli = Cli::parse();
        explain::report(run(&cli))
    }

    fn run(cli: &Cli) -> anyhow::Result<()> {
        let target = resolve_ipv4(&cli.host)?;
        let probe = Prober::open(cli, target)?;
        println!(
            "traceroute to {} ({target}), {} hops max, {} byte packets, {} probes",
            cli.host,
            cli.max_hops,
            if cli.icmp {
                20 + 8 + 8
            } else {
                20 + 8 + PROBE_PAYLOAD
            },
            if cli.icmp { "ICMP echo" } else { "UDP" }
        );
        for ttl in 1..=cli.max_hops {
            // setsockopt(IP_TTL): the probes of this hop leave with TTL `ttl`.
            probe
                .socket()
                .set_ttl_v4(ttl)
                .context("failed to set the TTL (setsockopt IP_TTL)")?;
            let mut answers = Vec::new();
            for query in 0..cli.queries {
                let number = (ttl - 1) * cli.queries + query;
                answers.push(probe.send_and_wait(number, cli.wait)?);
            }
            println!("{}", hop_line(ttl, &answers));
            if answers.iter().flatten().any(|a| a.is_final(target)) {
                return Ok(());
            }
        }
        Err(explain::hinted(
            format!("{target} was not reached within {} hops", cli.max_hops),
            "no probe got the destination's own answer (Port Unreachable, or the echo reply with \
         --icmp): the path is longer than --max-hops, or a firewall drops the probes or the \
         ICMP errors (routers that stay silent show as \"*\")",
        ))
    }

    /// The first IPv4 address of `host` (ICMP errors here are ICMPv4).
    fn resolve_ipv4(host: &str) -> anyhow::Result<Ipv4Addr> {
        cli::resolve(host, 0)?
            .iter()
            .find_map(|addr| match addr.ip() {
                IpAddr::V4(ip) => Some(ip),
                IpAddr::V6(_) => None,
            })
            .ok_or_else(|| {
                explain::hinted(
                    format!("'{host}' has no IPv4 address"),
                    "this traceroute speaks IPv4: give an IPv4 address such as 127.0.0.1",
                )
            })
    }

    /// What answered one probe, and after how long.
    #[derive(Debug, Clone, PartialEq)]
    struct Answer {
        from: Ipv4Addr,
        rtt: Duration,
        icmp_type: u8,
        code: u8,
    }

    impl Answer {
        /// True if this answer is from the destination itself: its Port
        /// Unreachable (UDP), its echo reply (--icmp), or any Destination
        /// Unreachable, after which traceroute goes no further either.
        fn is_final(&self, target: Ipv4Addr) -> bool {
            self.icmp_type == DESTINATION_UNREACHABLE
                || (self.icmp_type == ECHO_REPLY && self.from == target)
        }

        /// traceroute's marks for an unreachable other than the port: !N
        /// network, !H host, !P protocol, !X administratively prohibited.
        fn mark(&self) -> String {
            match (self.icmp_type, self.code) {
                (DESTINATION_UNREACHABLE, PORT_UNREACHABLE) => String::new(),
                (DESTINATION_UNREACHABLE, 0) => " !N".into(),
                (DESTINATION_UNREACHABLE, 1) => " !H".into(),
                (DESTINATION_UNREACHABLE, 2) => " !P".into(),
                (DESTINATION_UNREACHABLE, 13) => " !X".into(),
                (DESTINATION_UNREACHABLE, code) => format!(" !<{code}>"),
                _ => String::new(),
            }
        }
    }

    /// ` 1  10.20.1.1  0.061 ms  0.020 ms  0.018 ms`, as traceroute -n prints
    /// it: an address before the first time it answered for, "*" for silence.
    fn hop_line(ttl: u32, answers: &[Option<Answer>]) -> String {
        let mut line = format!("{ttl:>2} ");
        let mut last: Option<Ipv4Addr> = None;
        for answer in answers {
            match answer {
                None => line.push_str(" *"),
                Some(a) => {
                    if last != Some(a.from) {
                        line.push_str(&format!(" {}", a.from));
                        last = Some(a.from);
                    }
                    let ms = a.rtt.as_secs_f64() * 1000.0;
                    line.push_str(&format!("  {ms:.3} ms{}", a.mark()));
                }
            }
        }
        line
    }

    /// The socket the probes go out on, UDP or ICMP, and where they go.
    enum Prober {
        Udp {
            socket: Socket,
            target: Ipv4Addr,
            first_port: u16,
        },
        Icmp {
            socket: Socket,
            target: Ipv4Addr,
        },
    }

    impl Prober {
        fn open(cli: &Cli, target: Ipv4Addr) -> anyhow::Result<Prober> {
            let socket = if cli.icmp {
                // A ping socket: echo requests without root (net.ipv4.ping_group_range).
                Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4))
                    .map_err(ping_socket_refused)?
            } else {
                // A UDP socket on a port the OS picks (bind 0.0.0.0:0).
                let local = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
                let udp = UdpSocket::bind(local).context(Step::BindClient(Proto::Udp, local))?;
                Socket::from(udp)
            };
            // setsockopt(SOL_IP, IP_RECVERR, 1): keep each ICMP error about our
            // datagrams on the socket's error queue, with its type, code and
            // sender. Without it Linux reports no error at all to an unconnected
            // UDP socket, and a connected one hears only an errno.
            set_recverr(socket.as_raw_fd()).context("failed to set IP_RECVERR")?;
            Ok(if cli.icmp {
                Prober::Icmp { socket, target }
            } else {
                Prober::Udp {
                    socket,
                    target,
                    first_port: cli.port,
                }
            })
        }

        fn target(&self) -> Ipv4Addr {
            match self {
                Prober::Udp { target, .. } | Prober::Icmp { target, .. } => *target,
            }
        }

        fn socket(&self) -> &Socket {
            match self {
                Prober::Udp { socket, .. } | Prober::Icmp { socket, .. } => socket,
            }
        }

        /// Sends probe `number` and waits up to `wait` for what answers it.
        fn send_and_wait(&self, number: u32, wait: Duration) -> anyhow::Result<Option<Answer>> {
            let id = (number & 0xffff) as u16;
            let (packet, to) = match self {
                Prober::Udp {
                    target, first_port, ..
                } => {
                    // Each probe to its own port, so that its answer (which
                    // quotes the datagram) is easy to tell apart in a capture.
                    let port = first_port.wrapping_add(id);
                    let mut payload = vec![0u8; PROBE_PAYLOAD];
                    payload[..2].copy_from_slice(&id.to_be_bytes());
                    (payload, SocketAddrV4::new(*target, port))
                }
                // An echo request: type 8, code 0, identifier and checksum 0
                // (a ping socket fills both in itself: icmp_ping builds them by
                // hand), and the probe number as the sequence number.
                Prober::Icmp { target, .. } => {
                    let [hi, lo] = id.to_be_bytes();
                    (
                        vec![8, 0, 0, 0, 0, 0, hi, lo],
                        SocketAddrV4::new(*target, 0),
                    )
                }
            };
            let sent_at = Instant::now();
            // sendto(), with the TTL set above. An answer that came after its
            // probe was given up also left the socket a pending error (sk_err),
            // which this call returns once instead of sending (the details wait
            // on the error queue): then the probe is sent again.
            let to = to.into();
            let sent = match self.socket().send_to(&packet, &to) {
                Err(err)
                    if matches!(
                        err.raw_os_error(),
                        Some(
                            libc::EHOSTUNREACH
                                | libc::ENETUNREACH
                                | libc::ECONNREFUSED
                                | libc::EPROTO
                        )
                    ) =>
                {
                    self.socket().send_to(&packet, &to)
                }
                other => other,
            };
            sent.with_context(|| {
                format!(
                    "failed to send a probe to {target} (sendto)",
                    target = self.target()
                )
            })?;
            self.wait_for(id, sent_at, sent_at + wait)
        }

        /// Reads errors (and, with --icmp, echo replies) until the one about
        /// probe `id` arrives or `deadline` passes.
        fn wait_for(
            &self,
            id: u16,
            sent_at: Instant,
            deadline: Instant,
        ) -> anyhow::Result<Option<Answer>> {
            let fd = self.socket().as_raw_fd();
            loop {
                let heard = match wait_readable(fd, deadline)? {
                    Ready::Nothing => return Ok(None),
                    Ready::Error => match read_error_queue(fd)? {
                        Some(err) => {
                            let quoted = match self {
                                // The error queue hands back our own datagram: the UDP payload...
                                Prober::Udp { .. } => err.original.get(..2),
                                // ...or our echo request, whose sequence is at bytes 6 and 7.
                                Prober::Icmp { .. } => err.original.get(6..8),
                            };
                            Heard {
                                from: err.from,
                                icmp_type: err.icmp_type,
                                code: err.code,
                                probe: quoted.map(|b| u16::from_be_bytes([b[0], b[1]])),
                            }
                        }
                        None => continue,
                    },
                    Ready::Data => match self.read_data()? {
                        Some(heard) => heard,
                        None => continue,
                    },
                };
                // An answer to an earlier, already given-up probe is skipped.
                if heard.probe.is_none_or(|probe| probe == id) {
                    return Ok(Some(Answer {
                        from: heard.from,
                        rtt: sent_at.elapsed(),
                        icmp_type: heard.icmp_type,
                        code: heard.code,
                    }));
                }
            }
        }

        /// A datagram on the normal queue: with --icmp the destination's echo
        /// reply; with UDP, a service that really listened on the port answered.
        fn read_data(&self) -> anyhow::Result<Option<Heard>> {
            let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
            let (len, from) = self
                .socket()
                .recv_from(&mut buf)
                .context("failed to receive (recvfrom)")?;
            // SAFETY: recv_from initialised the first `len` bytes.
            let data: Vec<u8> = buf[..len]
                .iter()
                .map(|b| unsafe { b.assume_init() })
                .collect();
            let Some(from) = from.as_socket_ipv4().map(|a| *a.ip()) else {
                return Ok(None);
            };
            match self {
                Prober::Icmp { .. } if data.len() >= 8 && data[0] == ECHO_REPLY => {
                    Ok(Some(Heard {
                        from,
                        icmp_type: ECHO_REPLY,
                        code: 0,
                        probe: Some(u16::from_be_bytes([data[6], data[7]])),
                    }))
                }
                Prober::Icmp { .. } => Ok(None),
                // Treated like the port unreachable: the probe reached the host.
                Prober::Udp { .. } => Ok(Some(Heard {
                    from,
                    icmp_type: DESTINATION_UNREACHABLE,
                    code: PORT_UNREACHABLE,
                    probe: None,
                })),
            }
        }
    }

    /// The error, hint and three ways out when ping sockets are refused.
    fn ping_socket_refused(err: io::Error) -> anyhow::Error {
        let message = format!(
            "failed to open an ICMP ping socket with socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP): {err}"
        );
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
            .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into());
        let hint = match err.raw_os_error() {
            Some(libc::EACCES | libc::EPERM) => format!(
                "ping sockets are allowed only to the groups in net.ipv4.ping_group_range, \"{range}\" \
             here, root included: allow them with `sudo sysctl -w \
             net.ipv4.ping_group_range=\"0 2147483647\"`, or trace with UDP probes (leave out \
             --icmp: they need no permission), or run inside `unshare -rn` after setting the \
             range there"
            ),
            _ => "this kernel has no ICMP ping sockets: leave out --icmp to trace with UDP probes"
                .into(),
        };
        explain::hinted(message, hint)
    }

    /// `setsockopt(fd, SOL_IP, IP_RECVERR, &1, sizeof(int))` through libc:
    /// socket2 has no call for this option.
    fn set_recverr(fd: RawFd) -> io::Result<()> {
        let on: libc::c_int = 1;
        // SAFETY: `on` lives across the call and the length is its size.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_IP,
                libc::IP_RECVERR,
                (&raw const on).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    enum Ready {
        Data,
        Error,
        Nothing,
    }

    /// poll(2) on the socket until `deadline`: POLLERR (which poll always
    /// reports) means the error queue holds an ICMP error, POLLIN a datagram.
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
            // SAFETY: one valid pollfd, and the count says 1.
            let rc = unsafe { libc::poll(&mut pollfd, 1, millis) };
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err).context("failed to wait for an answer (poll)");
            }
            if pollfd.revents & libc::POLLERR != 0 {
                return Ok(Ready::Error);
            }
            if pollfd.revents & libc::POLLIN != 0 {
                return Ok(Ready::Data);
            }
        }
    }

    /// What answered a probe: an ICMP error, or (--icmp) an echo reply, and
    /// which probe it quotes (None if it cannot say).
    struct Heard {
        from: Ipv4Addr,
        icmp_type: u8,
        code: u8,
        probe: Option<u16>,
    }

    /// One ICMP error from the error queue.
    struct QueuedError {
        /// The router or host that sent the ICMP error (SO_EE_OFFENDER).
        from: Ipv4Addr,
        icmp_type: u8,
        code: u8,
        /// Our own datagram, as the error quoted it: the UDP payload, or the
        /// whole ICMP echo request on a ping socket.
        original: Vec<u8>,
    }

    /// recvmsg(fd, &msg, MSG_ERRQUEUE): takes the oldest error off the error
    /// queue. The data read is our own datagram that caused it; the control
    /// messages hold one (SOL_IP, IP_RECVERR) message, a `struct
    /// sock_extended_err` (linux/errqueue.h): ee_origin says who raised the
    /// error (SO_EE_ORIGIN_ICMP: an ICMP message from the network), ee_type and
    /// ee_code are that message's type and code, and right after the struct
    /// comes the `struct sockaddr_in` of the sender (SO_EE_OFFENDER). None for
    /// an error that did not come from ICMP (a local one).
    fn read_error_queue(fd: RawFd) -> anyhow::Result<Option<QueuedError>> {
        let mut data = [0u8; 1500];
        // The control buffer, aligned as a cmsghdr must be (u64).
        let mut control = [0u64; 64];
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // SAFETY: all-zero is a valid msghdr (no name, no buffers yet).
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = mem::size_of_val(&control) as _;
        // SAFETY: msg points at live buffers of the sizes it states.
        let len = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE) };
        if len < 0 {
            return Err(io::Error::last_os_error())
                .context("failed to read the error queue (recvmsg MSG_ERRQUEUE)");
        }
        let ee_size = mem::size_of::<libc::sock_extended_err>();
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR walk the buffer the kernel filled,
        // within msg_controllen; each read checks the message's own length.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                let header = &*cmsg;
                let payload = libc::CMSG_DATA(cmsg);
                let payload_len =
                    (header.cmsg_len as usize).saturating_sub(payload as usize - cmsg as usize);
                if header.cmsg_level == libc::SOL_IP
                    && header.cmsg_type == libc::IP_RECVERR
                    && payload_len >= ee_size
                {
                    let ee: libc::sock_extended_err = std::ptr::read_unaligned(payload.cast());
                    if ee.ee_origin != libc::SO_EE_ORIGIN_ICMP {
                        return Ok(None);
                    }
                    // SO_EE_OFFENDER(ee): the sockaddr just after the struct.
                    let from = if payload_len >= ee_size + mem::size_of::<libc::sockaddr_in>() {
                        let addr: libc::sockaddr_in =
                            std::ptr::read_unaligned(payload.add(ee_size).cast());
                        Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr))
                    } else {
                        Ipv4Addr::UNSPECIFIED
                    };
                    let original = data[..len as usize].to_vec();
                    return Ok(Some(QueuedError {
                        from,
                        icmp_type: ee.ee_type,
                        code: ee.ee_code,
                        original,
                    }));
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        Ok(None)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn answer(from: [u8; 4], us: u64, icmp_type: u8, code: u8) -> Option<Answer> {
            Some(Answer {
                from: from.into(),
                rtt: Duration::from_micros(us),
                icmp_type,
                code,
            })
        }

        #[test]
        fn hop_lines_look_like_traceroute_n() {
            let router = [10, 20, 1, 1];
            let line = hop_line(
                1,
                &[
                    answer(router, 61, 11, 0),
                    answer(router, 20, 11, 0),
                    answer(router, 18, 11, 0),
                ],
            );
            assert_eq!(line, " 1  10.20.1.1  0.061 ms  0.020 ms  0.018 ms");
            assert_eq!(hop_line(12, &[None, None, None]), "12  * * *");
            // A silent probe in the middle, and a second router answering the last.
            let line = hop_line(
                2,
                &[
                    answer(router, 100, 11, 0),
                    None,
                    answer([10, 20, 2, 1], 200, 11, 0),
                ],
            );
            assert_eq!(line, " 2  10.20.1.1  0.100 ms * 10.20.2.1  0.200 ms");
        }

        #[test]
        fn the_destination_ends_the_trace_and_other_unreachables_are_marked() {
            let target = Ipv4Addr::new(10, 20, 2, 2);
            let port = answer([10, 20, 2, 2], 1, 3, 3).expect("an answer");
            assert!(port.is_final(target) && port.mark().is_empty());
            let exceeded = answer([10, 20, 1, 1], 1, 11, 0).expect("an answer");
            assert!(!exceeded.is_final(target));
            let prohibited = answer([10, 20, 1, 1], 1, 3, 13).expect("an answer");
            assert!(prohibited.is_final(target));
            assert_eq!(prohibited.mark(), " !X");
            assert_eq!(
                answer([1, 1, 1, 1], 1, 3, 1).expect("an answer").mark(),
                " !H"
            );
            // An echo reply ends it only if it comes from the destination.
            assert!(
                answer([10, 20, 2, 2], 1, 0, 0)
                    .expect("an answer")
                    .is_final(target)
            );
            assert!(
                !answer([10, 20, 1, 1], 1, 0, 0)
                    .expect("an answer")
                    .is_final(target)
            );
        }
    }
}
