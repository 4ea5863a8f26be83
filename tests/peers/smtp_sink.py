#!/usr/bin/env python3
"""A local mail sink for smtp_client's tests and labs/08-mail.md.

A real SMTP server, Python's aiosmtpd (Debian: python3-aiosmtpd), that
delivers nothing: it accepts every message and saves the bytes that
arrived after DATA, with the dot-stuffing undone (RFC 5321 §4.5.2) and
nothing added, so a test can compare them with what the client meant to
send. It binds 127.0.0.1 on the port given (0 = any free one) and prints
its first line the way the lab servers do:

    smtp_sink listening on 127.0.0.1:PORT (SMTP)

then one line per message. Message N is saved as DIR/N.eml, its envelope
(MAIL FROM and each RCPT TO) as DIR/N.envelope.

Recipients given with --reject are refused at RCPT TO with a 550, the
way a real server answers an unknown user.

Usage: python3 smtp_sink.py DIR [PORT] [--reject ADDRESS ...]
"""

import argparse
import asyncio
import os
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, folder, reject):
        self.folder = folder
        self.reject = {r.lower() for r in reject}
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return f"550 5.1.1 <{address}>: Recipient address rejected: user unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        name = f"{self.count:03}"
        with open(os.path.join(self.folder, name + ".eml"), "wb") as f:
            f.write(envelope.original_content)
        with open(os.path.join(self.folder, name + ".envelope"), "w") as f:
            f.write(f"MAIL FROM: {envelope.mail_from}\n")
            for rcpt in envelope.rcpt_tos:
                f.write(f"RCPT TO: {rcpt}\n")
        print(
            f"smtp_sink saved message {name}: {len(envelope.original_content)} bytes "
            f"from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)}",
            flush=True,
        )
        return f"250 OK: saved as {name}.eml"


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("port", nargs="?", type=int, default=8025)
    parser.add_argument("--reject", nargs="*", default=[])
    args = parser.parse_args()
    os.makedirs(args.folder, exist_ok=True)
    sink = Sink(args.folder, args.reject)
    loop = asyncio.get_running_loop()
    # A fixed host name: the default asks DNS for this machine's name.
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="smtp-sink.localhost"), "127.0.0.1", args.port
    )
    host, port = server.sockets[0].getsockname()[:2]
    print(f"smtp_sink listening on {host}:{port} (SMTP)", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
