#!/usr/bin/python3
"""A local SMTP sink for tests (Debian's python3-aiosmtpd).

Serve:
  smtp_sink.py serve --dir D [--tls] [--smtps] [--require-starttls]
      [--auth USER:PASS] [--reject550 ADDR]... [--reject451 ADDR]...
      [--hang ADDR]...

Listens on 127.0.0.1 on a free port and writes it to D/port (atomically).
With --tls or --smtps it makes a self-signed certificate for 127.0.0.1 in
D/cert.pem (D/key.pem) before listening; clients trust D/cert.pem. Each
accepted connection adds one to D/connections; each message is saved as
D/msg-N.eml (raw bytes) with its envelope in D/msg-N.json. RCPT of a
--reject550 address is answered "550 5.1.1 user unknown", of a --reject451
address "451 4.3.0 try again later"; DATA for a --hang address never gets
an answer (D/hanging appears once one waits). Runs until killed.

Summarize:
  smtp_sink.py summarize D
prints a JSON list, in arrival order, of what Python's email parser reads
in each saved message (decoded headers, content types, decoded parts).
"""
import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl
import subprocess
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self, args):
        self.dir = args.dir
        self.reject550 = set(a.lower() for a in args.reject550)
        self.reject451 = set(a.lower() for a in args.reject451)
        self.hang = set(a.lower() for a in args.hang)
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, options):
        a = address.lower()
        if a in self.reject550:
            return "550 5.1.1 <%s>: user unknown" % address
        if a in self.reject451:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(r.lower() in self.hang for r in envelope.rcpt_tos):
            write_atomically(os.path.join(self.dir, "hanging"), "1")
            await asyncio.sleep(3600)
        n = self.count
        self.count += 1
        base = os.path.join(self.dir, "msg-%d" % n)
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(base + ".json", "w") as f:
            json.dump({"mail_from": envelope.mail_from,
                       "rcpt_tos": envelope.rcpt_tos,
                       "peer": list(session.peer)[:2]}, f)
        return "250 2.0.0 queued as %d" % n


def write_atomically(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def make_cert(d):
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", key, "-out", cert],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def serve(args):
    sink = Sink(args)
    ctx = make_cert(args.dir) if (args.tls or args.smtps) else None
    connections = [0]
    authenticator = None
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, data):
            ok = (isinstance(data, LoginPassword) and
                  data.login == user.encode() and
                  data.password == password.encode())
            # handled=False: aiosmtpd answers "535 5.7.8" itself.
            return AuthResult(success=ok, handled=False)

    def factory():
        connections[0] += 1
        write_atomically(os.path.join(args.dir, "connections"),
                         str(connections[0]))
        kw = {}
        if args.tls:
            kw["tls_context"] = ctx
            kw["require_starttls"] = args.require_starttls
        if authenticator:
            kw["authenticator"] = authenticator
            kw["auth_required"] = True
            kw["auth_require_tls"] = False
        return SMTP(sink, hostname="sink.test", **kw)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        factory, host="127.0.0.1", port=0,
        ssl=ctx if args.smtps else None)
    port = server.sockets[0].getsockname()[1]
    write_atomically(os.path.join(args.dir, "connections"), "0")
    write_atomically(os.path.join(args.dir, "port"), str(port))
    async with server:
        await server.serve_forever()


def summarize(d):
    names = [n for n in os.listdir(d)
             if n.startswith("msg-") and n.endswith(".eml")]
    names.sort(key=lambda n: int(n[4:-4]))
    out = []
    for n in names:
        with open(os.path.join(d, n), "rb") as f:
            raw = f.read()
        with open(os.path.join(d, n[:-4] + ".json")) as f:
            env = json.load(f)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        parts = []
        for p in msg.walk():
            if p.is_multipart():
                continue
            parts.append({"content_type": p.get_content_type(),
                          "charset": p.get_content_charset(),
                          "encoding": p.get("Content-Transfer-Encoding", ""),
                          "content": p.get_content()})
        frm = msg["From"]
        addrs = frm.addresses if frm is not None else ()
        longest = max(len(l) for l in raw.split(b"\r\n"))
        out.append({
            "mail_from": env["mail_from"],
            "rcpt_tos": env["rcpt_tos"],
            "from": str(msg["From"]),
            "from_addr": addrs[0].addr_spec if addrs else "",
            "from_name": addrs[0].display_name if addrs else "",
            "to": str(msg["To"]),
            "subject": str(msg["Subject"]),
            "date": str(msg["Date"]),
            "date_ok": (msg["Date"] is not None and
                        msg["Date"].datetime is not None),
            "message_id": str(msg["Message-ID"]),
            "mime_version": str(msg["MIME-Version"]),
            "content_type": msg.get_content_type(),
            "list_unsubscribe": str(msg.get("List-Unsubscribe", "")),
            "list_unsubscribe_post":
                str(msg.get("List-Unsubscribe-Post", "")),
            "defects": len(msg.defects) + sum(
                len(p.defects) for p in msg.walk()),
            "longest_line": longest,
            "parts": parts,
        })
    json.dump(out, sys.stdout)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--dir", required=True)
    s.add_argument("--tls", action="store_true")
    s.add_argument("--smtps", action="store_true")
    s.add_argument("--require-starttls", action="store_true")
    s.add_argument("--auth", default="")
    s.add_argument("--reject550", action="append", default=[])
    s.add_argument("--reject451", action="append", default=[])
    s.add_argument("--hang", action="append", default=[])
    m = sub.add_parser("summarize")
    m.add_argument("dir")
    args = p.parse_args()
    # aiosmtpd warns that AUTH without TLS is unsafe: tests want exactly that.
    warnings.filterwarnings("ignore")
    if args.cmd == "serve":
        asyncio.run(serve(args))
    else:
        summarize(args.dir)


if __name__ == "__main__":
    main()
