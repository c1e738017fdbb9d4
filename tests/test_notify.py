"""The failure notifier posts to the webhook of the `salesos_alerts` connection, and never raises."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from salesos.notify import RunFailureNotifier, failure_message

FAILURE = {"run_id": "scheduled__2026-10-31", "as_of": "2026-10-31", "task": "validate", "try_number": 1,
           "error": "Opportunity.csv row 7 field Amount: not a number", "failure_file": "/data/runs/x/failure.json"}


class FakeDag:
    dag_id = "sales_nightly"


@pytest.fixture
def webhook():
    received, status = [], {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], json.loads(body)))
            self.send_response(status["code"])
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], received, status
    server.shutdown()


def test_posts_the_failure_to_the_configured_connection(webhook, monkeypatch):
    port, received, _ = webhook
    monkeypatch.setenv("AIRFLOW_CONN_SALESOS_ALERTS", json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http", "extra": {"path": "/hooks/abc"}}))
    assert RunFailureNotifier(FAILURE).send({"dag": FakeDag()}) is True
    (path, ctype, body), = received
    assert path == "/hooks/abc" and ctype == "application/json"
    assert body["task"] == "validate" and body["dag_id"] == "sales_nightly" and body["as_of"] == "2026-10-31"
    assert "Opportunity.csv row 7 field Amount" in body["text"] and "validate" in body["text"]


def test_a_full_url_in_host_works_too(webhook, monkeypatch):
    port, received, _ = webhook
    monkeypatch.setenv("AIRFLOW_CONN_SALESOS_ALERTS", json.dumps(
        {"conn_type": "http", "host": f"http://127.0.0.1:{port}/services/T0/B0/x"}))
    assert RunFailureNotifier(FAILURE).send({}) is True
    assert received[0][0] == "/services/T0/B0/x"


def test_no_connection_means_no_notification(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_SALESOS_ALERTS", raising=False)
    assert RunFailureNotifier(FAILURE, conn_id="salesos_alerts_not_configured").send({}) is False


def test_a_webhook_that_fails_is_logged_not_raised(webhook, monkeypatch, caplog):
    port, received, status = webhook
    status["code"] = 500
    monkeypatch.setenv("AIRFLOW_CONN_SALESOS_ALERTS", json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{port}"}))
    assert RunFailureNotifier(FAILURE).send({}) is False
    assert len(received) == 1 and "could not notify" in caplog.text
    monkeypatch.setenv("AIRFLOW_CONN_SALESOS_ALERTS", json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9"}))
    assert RunFailureNotifier(FAILURE, timeout=2).send({}) is False  # nothing listens: still no exception


def test_message_names_task_run_and_error():
    msg = failure_message(FAILURE, "sales_nightly")
    assert msg["text"].startswith("salesos: task validate of sales_nightly run scheduled__2026-10-31 (as of 2026-10-31)")
    assert msg["failure_file"] == FAILURE["failure_file"]
