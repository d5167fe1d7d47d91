"""Delivery through the outbox to real local receivers: an HTTP server (Slack + webhook) and
an SMTP server (aiosmtpd, plain and with STARTTLS + AUTH). Channel outages, Retry-After, dead letters and secret hygiene."""
from __future__ import annotations

import email
import hashlib
import hmac
import json
import logging
import ssl
import subprocess
import sys
import threading
from datetime import date, datetime, timedelta, timezone
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from nightjar.alerts import engine, outbox, sample
from nightjar.alerts.channels import build_senders
from nightjar.alerts.config import load_config
from nightjar.alerts.rules import parse_rules

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ui_helpers import free_port  # noqa: E402

SLACK_SECRET_PATH = "/services/T0SECRET/B0SECRET/xoxsecretslacktoken123"
HMAC_KEY = "hmac-key-that-must-never-leak-42"
SMTP_PASSWORD = "smtp-password-never-in-logs-7"


class Receiver:
    """A local HTTP receiver; `script` is a list of (status, headers) answered in order, then 200."""

    def __init__(self, clock=None):
        self.requests: list[dict] = []
        self.script: list[tuple[int, dict]] = []
        self.clock = clock
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers = receiver.script.pop(0) if receiver.script else (200, {})
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                          "status": status, "at": receiver.clock() if receiver.clock else None})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ok_keys(self, path_prefix: str) -> list[str]:
        return [r["headers"]["Idempotency-Key"] for r in self.requests
                if r["path"].startswith(path_prefix) and r["status"] == 200]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content,
                                                      policy=policy.default))
        return "250 OK"


@pytest.fixture(autouse=True)
def _own_data_dir(data_dir):
    # the delivered-notifications ledger lives under the data dir: one per test
    return data_dir


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def smtp():
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


class FakeClock:
    def __init__(self):
        self.t = datetime.now(timezone.utc) + timedelta(seconds=1)  # outbox rows were queued at real time

    def __call__(self):
        return self.t

    def sleep(self, seconds):
        self.t += timedelta(seconds=seconds)


def _env(receiver, smtp_port=None, **extra):
    env = {"NIGHTJAR_SLACK_WEBHOOK_URL": receiver.url + SLACK_SECRET_PATH,
           "NIGHTJAR_WEBHOOK_URL": receiver.url + "/hook?token=webhooktokensecret99",
           "NIGHTJAR_WEBHOOK_SECRET": HMAC_KEY, "NIGHTJAR_UI_URL": "http://dagster.example:3000"}
    if smtp_port:
        env.update({"NIGHTJAR_SMTP_HOST": "127.0.0.1", "NIGHTJAR_SMTP_PORT": str(smtp_port),
                    "NIGHTJAR_SMTP_STARTTLS": "false", "NIGHTJAR_SMTP_FROM": "alerts@shop.test",
                    "NIGHTJAR_SMTP_TO": "oncall@shop.test, data@shop.test", "NIGHTJAR_SMTP_PASSWORD": SMTP_PASSWORD})
    env.update(extra)
    return env


def _incident_warehouse(config, channels, series=(40, 41, 0, 0, 0, 0, 39), repeat="2d", con=None):
    """A mart with an order collapse, evaluated night by night -> notifications in the outbox
    (of `con`, default a new in-memory warehouse)."""
    rs = parse_rules({"rules": [{"name": "orders_collapse", "description": "Orders collapsed.", "metric": "orders",
                                 "type": "threshold", "op": "<", "value": 5, "severity": "critical",
                                 "owners": ["team:checkout"], "channels": channels, "repeat_interval": repeat}]})
    con = con or duckdb.connect()
    con.execute(sample.DDL)
    start = date(2025, 3, 3)
    for i, v in enumerate(series):
        d = start + timedelta(days=i)
        con.execute("insert into marts.fct_daily_metrics (metric_date, orders) values (?, ?)", [d, v])
        engine.evaluate_rules(con, rs, config, today=d + timedelta(days=1))
    return con, rs


def test_slack_webhook_and_email_receive_complete_messages(receiver, smtp):
    sink, port = smtp
    config = load_config(_env(receiver, port))
    con, rs = _incident_warehouse(config, ["slack", "webhook", "email"])
    report = outbox.deliver(con, config, build_senders(config))
    keys = [r[0] for r in con.execute("select distinct idempotency_key from alerts.outbox order by 1").fetchall()]
    fp = rs.rules[0].fingerprint
    assert keys == sorted([f"{fp}:1:firing", f"{fp}:1:repeat:2025-03-07", f"{fp}:1:resolved"])
    assert report.sent == 9 and report.pending == 0

    slack = [r for r in receiver.requests if r["path"] == SLACK_SECRET_PATH]
    firing = json.loads(next(r["body"] for r in slack if r["headers"]["Idempotency-Key"] == f"{fp}:1:firing"))
    header = firing["blocks"][0]["text"]["text"]
    assert header == "[CRITICAL] FIRING: orders_collapse (orders on 2025-03-05)"
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1]
              for b in firing["blocks"] if b["type"] == "section" and "fields" in b for f in b["fields"]}
    assert fields["*Value*"] == "0" and fields["*Expected*"] == "5.00" and fields["*Severity*"] == "critical"
    button = next(b for b in firing["blocks"] if b["type"] == "actions")["elements"][0]
    assert button["url"] == "http://dagster.example:3000/assets/marts/fct_daily_metrics"

    hooks = [r for r in receiver.requests if r["path"].startswith("/hook")]
    assert len(hooks) == 3
    for r in hooks:
        ts = r["headers"]["X-Nightjar-Timestamp"]
        expected = "sha256=" + hmac.new(HMAC_KEY.encode(), ts.encode() + b"." + r["body"], hashlib.sha256).hexdigest()
        assert r["headers"]["X-Nightjar-Signature"] == expected
        body = json.loads(r["body"])
        assert body["idempotency_key"] == r["headers"]["Idempotency-Key"]
    resolved = next(json.loads(r["body"]) for r in hooks if r["headers"]["Idempotency-Key"].endswith(":resolved"))
    assert resolved["kind"] == "resolved" and resolved["resolved_date"] == "2025-03-09"
    assert resolved["fired_date"] == "2025-03-05"

    assert len(sink.messages) == 3
    msg = next(m for m in sink.messages if m["Idempotency-Key"] == f"{fp}:1:firing")
    assert msg["Subject"] == header and msg["To"] == "oncall@shop.test, data@shop.test"
    assert msg["X-Nightjar-Idempotency-Key"] == f"{fp}:1:firing"
    plain = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Value: 0\r\n" in plain and "Open in Dagster: http://dagster.example:3000/assets/marts/fct_daily_metrics" in plain
    assert "<table>" in html and "orders_collapse" in html


def test_a_channel_down_for_hours_gets_every_notification_exactly_once(receiver):
    clock = FakeClock()
    receiver.clock = clock
    config = load_config(_env(receiver, NIGHTJAR_ALERTS_BACKOFF_SECONDS="60"))
    con, _ = _incident_warehouse(config, ["webhook"], series=(40, 0, 0, 0, 40, 0, 40), repeat="2d")
    keys = [r[0] for r in con.execute("select idempotency_key from alerts.outbox").fetchall()]
    assert len(keys) == 5  # firing, reminder, resolved, firing, resolved
    # down: 503 for a long while, then rate limited (429 + Retry-After), then back
    receiver.script = [(503, {"Retry-After": "600"})] * 12 + [(429, {"Retry-After": "900"})] * 3
    senders = build_senders(config)
    for _ in range(36):  # a delivery run every 10 minutes for 6 hours
        outbox.deliver(con, config, senders, now=clock, sleep=clock.sleep, max_wait_seconds=0)
        clock.sleep(600)
    ok = receiver.ok_keys("/hook")
    assert sorted(ok) == sorted(keys) and len(ok) == len(set(ok))  # each key delivered once
    failed = [r for r in receiver.requests if r["status"] != 200]
    assert len(failed) == 15
    # Retry-After was honoured: no key was retried sooner than the receiver asked
    by_key: dict[str, list] = {}
    for r in receiver.requests:
        by_key.setdefault(r["headers"]["Idempotency-Key"], []).append(r)
    for reqs in by_key.values():
        for prev, nxt in zip(reqs, reqs[1:]):
            asked = {503: 600, 429: 900}.get(prev["status"], 0)
            assert (nxt["at"] - prev["at"]).total_seconds() >= asked
    rows = con.execute("select status, count(*) from alerts.outbox group by 1").fetchall()
    assert rows == [("sent", 5)]


def test_rows_survive_between_runs_and_dead_letters_go_to_the_fallback(receiver, caplog, tmp_path):
    clock = FakeClock()
    config = load_config(_env(receiver, NIGHTJAR_ALERTS_MAX_ATTEMPTS="3", NIGHTJAR_ALERTS_BACKOFF_SECONDS="1"))
    path = tmp_path / "wh.duckdb"
    con, _ = _incident_warehouse(config, ["slack"], series=(40, 0))
    con.execute(f"attach '{path}' as wh")
    con.execute("copy from database memory to wh")
    con.close()
    receiver.script = [(500, {})] * 10
    for _ in range(3):  # three separate runs (processes), each finds the pending row in the warehouse
        con = duckdb.connect(str(path))
        with caplog.at_level(logging.INFO, logger="nightjar.alerts"):
            outbox.deliver(con, config, build_senders(config), now=clock, sleep=clock.sleep, max_wait_seconds=0)
        con.close()
        clock.sleep(60)
    con = duckdb.connect(str(path))
    rows = con.execute("select channel, status, attempts, fallback_of, last_status_code from alerts.outbox "
                       "order by channel").fetchall()
    assert rows == [("log", "sent", 1, "slack", None), ("slack", "dead", 3, None, 500)]
    assert "dead-lettered on slack after 3 attempts" in caplog.text
    assert "FIRING: orders_collapse" in caplog.text  # the fallback (log) carried the message


def test_a_rebuilt_warehouse_does_not_send_a_delivered_notification_again(receiver, data_dir):
    config = load_config(_env(receiver))
    path = data_dir / "warehouse.duckdb"
    keys = []
    for night in ("first build", "rebuilt"):
        con, rs = _incident_warehouse(config, ["webhook"], series=(40, 0), con=duckdb.connect(str(path)))
        keys.append([r[0] for r in con.execute("select idempotency_key from alerts.outbox").fetchall()])
        report = engine.run_alerts(con, rs, config, evaluate=False, max_wait_seconds=0)
        assert con.execute("select status from alerts.outbox").fetchall() == [("sent",)]
        con.close()
        if night == "first build":
            assert report.delivery.sent == 1
            path.unlink()  # the warehouse is deleted, then rebuilt from scratch
            assert not path.exists()
    assert keys[0] == keys[1] and len(keys[0]) == 1  # the rebuild queued the same key again
    assert report.delivery.sent == 0 and report.delivery.already_delivered == 1
    assert receiver.ok_keys("/hook") == keys[0]  # received once


def test_unconfigured_channel_routes_to_fallback(caplog):
    config = load_config({})
    with caplog.at_level(logging.INFO, logger="nightjar.alerts"):
        con, _ = _incident_warehouse(config, ["slack", "email"], series=(40, 0))
        outbox.deliver(con, config, build_senders(config))
    rows = con.execute("select channel, status, fallback_of from alerts.outbox").fetchall()
    assert rows == [("log", "sent", "slack")]
    assert "channel slack is not configured" in caplog.text


def test_secrets_never_reach_logs_or_the_warehouse(caplog):
    # nothing listens on this port: the HTTP error quotes the URL, which must be redacted
    dead_port = free_port()
    env = {"NIGHTJAR_SLACK_WEBHOOK_URL": f"http://127.0.0.1:{dead_port}{SLACK_SECRET_PATH}",
           "NIGHTJAR_WEBHOOK_URL": f"http://127.0.0.1:{dead_port}/hook?token=webhooktokensecret99",
           "NIGHTJAR_WEBHOOK_SECRET": HMAC_KEY, "NIGHTJAR_SMTP_HOST": "127.0.0.1",
           "NIGHTJAR_SMTP_PORT": str(dead_port), "NIGHTJAR_SMTP_TO": "x@shop.test",
           "NIGHTJAR_SMTP_USER": "alerts", "NIGHTJAR_SMTP_PASSWORD": SMTP_PASSWORD,
           "NIGHTJAR_ALERTS_HTTP_TIMEOUT": "2"}
    config = load_config(env)
    assert SMTP_PASSWORD not in repr(config) and HMAC_KEY not in repr(config)
    with caplog.at_level(logging.DEBUG):
        con, _ = _incident_warehouse(config, ["slack", "webhook", "email"], series=(40, 0))
        summary = engine.run_alerts(con, parse_rules({"rules": [{"name": "x", "metric": "orders", "type": "threshold",
                                                                  "op": "<", "value": -1}]}), config,
                                    max_wait_seconds=0)
    errors = [r[0] for r in con.execute("select last_error from alerts.outbox where last_error is not null").fetchall()]
    assert len(errors) == 3 and any("***" in e for e in errors)
    dump = "\n".join([caplog.text, json.dumps(summary.as_metadata(), default=str)] + errors + [
        str(r) for r in con.execute("select * from alerts.outbox").fetchall()] + [
        str(r) for r in con.execute("select * from alerts.alert_events").fetchall()])
    for secret in ("xoxsecretslacktoken123", "T0SECRET", "webhooktokensecret99", HMAC_KEY, SMTP_PASSWORD):
        assert secret not in dump, secret


# --- STARTTLS (the default: NIGHTJAR_SMTP_STARTTLS=true, port 587) ------------------------

SMTP_USER = "alerts-bot"


@pytest.fixture
def tls_cert(tmp_path):
    """A self-signed certificate for 127.0.0.1 (the openssl CLI of the machine)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


class TlsSmtpSink(SmtpSink):
    """Records, per message, whether the session had been upgraded to TLS and who logged in."""

    def __init__(self):
        super().__init__()
        self.sessions: list[dict] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.sessions.append({"tls": session.ssl is not None, "authenticated": session.authenticated})
        return await super().handle_DATA(server, session, envelope)

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login, auth_data.password))
        ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
        return AuthResult(success=ok)


def _tls_server(sink, cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True,
                            authenticator=sink.authenticate, auth_required=True)
    controller.start()
    return controller, port


def _starttls_env(receiver, port):
    return _env(receiver, port, NIGHTJAR_SMTP_STARTTLS="true", NIGHTJAR_SMTP_USER=SMTP_USER)


def test_email_goes_over_starttls_and_logs_in_only_after_the_upgrade(receiver, tls_cert, monkeypatch):
    cert, key = tls_cert
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this server's certificate
    sink = TlsSmtpSink()
    controller, port = _tls_server(sink, cert, key)
    try:
        config = load_config(_starttls_env(receiver, port))
        assert config.smtp is not None and config.smtp.starttls
        con, rs = _incident_warehouse(config, ["email"])
        report = outbox.deliver(con, config, build_senders(config))
    finally:
        controller.stop()
    assert report.sent == 3 and report.pending == 0
    assert len(sink.messages) == 3
    # every message arrived on an upgraded, authenticated session; the password was sent once per
    # connection, and only after STARTTLS (the server refuses AUTH before it: auth_require_tls)
    assert sink.sessions == [{"tls": True, "authenticated": True}] * 3
    assert sink.logins == [(SMTP_USER.encode(), SMTP_PASSWORD.encode())] * 3
    assert {m["Idempotency-Key"] for m in sink.messages} == {
        r[0] for r in con.execute("select idempotency_key from alerts.outbox where channel = 'email'").fetchall()}


def test_starttls_never_falls_back_to_plain_text(receiver, tls_cert, smtp, monkeypatch):
    cert, key = tls_cert
    # a server that does not offer STARTTLS: the mail is not sent in clear, the row stays queued
    plain_sink, plain_port = smtp
    config = load_config(_starttls_env(receiver, plain_port))
    con, _ = _incident_warehouse(config, ["email"], series=(40, 0))
    report = outbox.deliver(con, config, build_senders(config))
    assert report.sent == 0 and report.pending == 1 and plain_sink.messages == []
    (error,) = con.execute("select last_error from alerts.outbox where channel = 'email'").fetchone()
    assert "STARTTLS" in error and SMTP_PASSWORD not in error

    # a server whose certificate the client does not trust: refused, not delivered
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    sink = TlsSmtpSink()
    controller, port = _tls_server(sink, cert, key)
    try:
        config = load_config(_starttls_env(receiver, port))
        con, _ = _incident_warehouse(config, ["email"], series=(40, 0))
        report = outbox.deliver(con, config, build_senders(config))
    finally:
        controller.stop()
    assert report.sent == 0 and report.pending == 1
    assert sink.messages == [] and sink.logins == []
    (error,) = con.execute("select last_error from alerts.outbox where channel = 'email'").fetchone()
    assert "CERTIFICATE_VERIFY_FAILED" in error


def test_webhooks_without_a_secret_are_sent_with_a_warning(receiver, caplog):
    env = _env(receiver)
    del env["NIGHTJAR_WEBHOOK_SECRET"]
    config = load_config(env)
    con, _ = _incident_warehouse(config, ["webhook"])
    with caplog.at_level(logging.WARNING, logger="nightjar.alerts"):
        report = outbox.deliver(con, config, build_senders(config))
    assert report.sent == 3
    hooks = [r for r in receiver.requests if r["path"].startswith("/hook")]
    assert len(hooks) == 3 and not any("X-Nightjar-Signature" in r["headers"] for r in hooks)
    warnings = [r for r in caplog.records if "NIGHTJAR_WEBHOOK_SECRET is not set" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING  # once per delivery run


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # the insecure server under test
def test_smtp_login_without_starttls_is_refused_unless_allowed(receiver):
    sink = TlsSmtpSink()
    port = free_port()
    # a server that accepts AUTH on an unencrypted connection
    controller = Controller(sink, hostname="127.0.0.1", port=port, authenticator=sink.authenticate,
                            auth_required=True, auth_require_tls=False)
    controller.start()
    try:
        env = _env(receiver, port, NIGHTJAR_SMTP_USER=SMTP_USER)  # STARTTLS off, with a password
        config = load_config(env)
        con, _ = _incident_warehouse(config, ["email"], series=(40, 0))
        report = outbox.deliver(con, config, build_senders(config), max_wait_seconds=0)
        assert report.sent == 0 and report.pending == 1
        assert sink.logins == [] and sink.messages == []  # the password never went out in clear
        (error,) = con.execute("select last_error from alerts.outbox where channel = 'email'").fetchone()
        assert "NIGHTJAR_SMTP_ALLOW_PLAINTEXT_LOGIN=true" in error and SMTP_PASSWORD not in error

        config = load_config({**env, "NIGHTJAR_SMTP_ALLOW_PLAINTEXT_LOGIN": "true"})
        con, _ = _incident_warehouse(config, ["email"], series=(40, 0))
        report = outbox.deliver(con, config, build_senders(config), max_wait_seconds=0)
    finally:
        controller.stop()
    assert report.sent == 1
    assert sink.logins == [(SMTP_USER.encode(), SMTP_PASSWORD.encode())]
    assert sink.sessions == [{"tls": False, "authenticated": True}]
