"""Failure notifications through an Airflow notifier, configured as an Airflow connection.

The nightly DAG's failure callback records the failure in the run folder and then calls
`RunFailureNotifier`, which posts it as JSON to the webhook of the connection `salesos_alerts` when the
deployment defines one (`AIRFLOW_CONN_SALESOS_ALERTS`, a secrets backend or the UI). The JSON carries a
`text` line (what Slack and Teams incoming webhooks display) and the facts of the failure. No connection,
no notification; a notification that cannot be sent is logged and never raised, so it cannot hide the
failure it reports.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

from airflow.sdk import BaseNotifier, Connection
from airflow.sdk.exceptions import AirflowNotFoundException

log = logging.getLogger(__name__)

ALERTS_CONN_ID = "salesos_alerts"


def webhook_url(conn: Connection) -> str:
    """The URL of an `http` connection: a full URL in `host`, or schema://host:port plus the extra `path`."""
    extra = conn.extra_dejson or {}
    host = conn.host or ""
    if host.startswith(("http://", "https://")):
        url = host
    else:
        url = f"{conn.schema or 'https'}://{host}" + (f":{conn.port}" if conn.port else "")
    return url + str(extra.get("path", ""))


def failure_message(failure: dict[str, Any], dag_id: str | None) -> dict[str, Any]:
    """The JSON posted: a readable `text` line plus every recorded fact of the failure."""
    text = (
        f"salesos: task {failure.get('task')} of {dag_id} run {failure.get('run_id')} "
        f"(as of {failure.get('as_of')}) failed on try {failure.get('try_number')}: "
        f"{failure.get('error') or 'no message'}. The last good warehouse stays published."
    )
    return {"text": text, "dag_id": dag_id, **failure}


class RunFailureNotifier(BaseNotifier):
    """Posts a failed task's record to the webhook of an Airflow `http` connection."""

    template_fields = ("conn_id",)

    def __init__(self, failure: dict[str, Any], conn_id: str = ALERTS_CONN_ID, timeout: float = 10.0):
        super().__init__()
        self.failure = failure
        self.conn_id = conn_id
        self.timeout = timeout

    def notify(self, context: Any) -> None:
        self.send(context)

    def send(self, context: Any) -> bool:
        """True when the webhook accepted the message; False when none is configured or it failed."""
        try:
            conn = Connection.get(self.conn_id)
        except AirflowNotFoundException:
            log.info("no connection %r: failure recorded, no notification sent", self.conn_id)
            return False
        except Exception as exc:  # a broken secrets backend must not mask the failure either
            log.warning("could not read connection %r: %s", self.conn_id, exc)
            return False
        dag = context.get("dag") if hasattr(context, "get") else None
        body = json.dumps(failure_message(self.failure, getattr(dag, "dag_id", None)), default=str).encode()
        req = urllib.request.Request(webhook_url(conn), data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                ok = 200 <= resp.status < 300
        except Exception as exc:  # a notification must never mask the failure it reports
            log.warning("could not notify %s about the failure: %s", self.conn_id, exc)
            return False
        if not ok:
            log.warning("%s answered HTTP %s to the failure notification", self.conn_id, resp.status)
        return ok
