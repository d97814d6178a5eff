"""A real SMTP server (aiosmtpd) for tests/email.rs, bound on 127.0.0.1, port chosen by the OS.

Modes: plain, starttls (STARTTLS offered and required), tls (implicit TLS). Options: AUTH
PLAIN/LOGIN with one user; the first N DATA answered with a given code; the first N DATA
connections dropped. Each accepted mail is parsed with Python's email package and written to
MAILDIR as <n>.json: recipients, decoded headers, the MIME tree and each attachment's bytes
(base64). Prints "PORT <n>" once listening; runs until killed.
"""

import argparse
import asyncio
import base64
import email
import email.header
import email.policy
import json
import os
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def tree(part):
    if part.is_multipart():
        return {"type": part.get_content_type(), "parts": [tree(p) for p in part.iter_parts()]}
    return {"type": part.get_content_type(), "filename": part.get_filename()}


class Handler:
    def __init__(self, args):
        self.args = args
        self.data_seen = 0
        self.stored = 0

    async def handle_DATA(self, server, session, envelope):
        self.data_seen += 1
        if self.data_seen <= self.args.drop:
            session.peer  # noqa: B018
            server.transport.abort()
            return "250 OK (never heard)"
        if self.data_seen <= self.args.fail_count:
            return self.args.fail_reply
        for rcpt in envelope.rcpt_tos:
            if rcpt.startswith("nobody@"):
                return "550 5.1.1 mailbox unavailable"
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        attachments = []
        for part in msg.walk():
            if part.get_content_disposition() == "attachment":
                attachments.append({
                    "filename": part.get_filename(),
                    "type": part.get_content_type(),
                    "base64": base64.b64encode(part.get_payload(decode=True)).decode(),
                })
        text = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        raw_subject = ""
        for line in envelope.original_content.decode("utf-8", "replace").splitlines():
            if line.lower().startswith("subject:"):
                raw_subject = line[8:].strip()
                break
        self.stored += 1
        out = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "raw_subject": raw_subject,
            "from": str(msg["from"]),
            "message_id": str(msg["message-id"]),
            "tree": tree(msg),
            "text": text.get_content() if text is not None else None,
            "html": html.get_content() if html is not None else None,
            "attachments": attachments,
            "tls": server.transport.get_extra_info("ssl_object") is not None
            or server._tls_protocol is not None,
            "auth": session.auth_data.login.decode()
            if isinstance(session.auth_data, LoginPassword) else None,
        }
        path = os.path.join(self.args.maildir, f"{self.stored}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(out, f)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 Ok: queued as %d" % self.stored


def main():
    # aiosmtpd warns about its own deprecated session.login_data on every AUTH.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["plain", "starttls", "tls"], default="plain")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--auth", help="USER:PASSWORD")
    p.add_argument("--fail-count", type=int, default=0)
    p.add_argument("--fail-reply", default="421 4.3.2 try again later")
    p.add_argument("--drop", type=int, default=0)
    p.add_argument("--maildir", required=True)
    args = p.parse_args()

    ctx = None
    if args.mode != "plain":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)

    authenticator = None
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and \
                auth_data.login.decode() == user and auth_data.password.decode() == password
            return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    handler = Handler(args)

    def factory():
        return SMTP(
            handler,
            hostname="smtp.test",
            tls_context=ctx if args.mode == "starttls" else None,
            require_starttls=args.mode == "starttls",
            authenticator=authenticator,
            auth_required=authenticator is not None,
            auth_require_tls=args.mode == "starttls",
        )

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            factory, "127.0.0.1", 0, ssl=ctx if args.mode == "tls" else None
        )
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    sys.exit(main())
