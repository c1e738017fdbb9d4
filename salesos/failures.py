"""How a failed run says so: one line (what failed, where, whether the published warehouse changed), its
details, and the traceback in the run log (`<data>/runs/<run_id>/run.log`), never only on a terminal.

Shared by `salesos run` and the Airflow failure callback, so a person reads the same sentence in either.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

RUN_LOG = "run.log"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_STEP_ATTR = "salesos_step"
# Errors of other libraries keep at most this many lines of their message (DuckDB adds SQL context).
_MAX_FOREIGN_DETAIL = 5


def mark_step(exc: BaseException, step: str) -> None:
    """Record on the error which step of the run it stopped (the innermost mark wins)."""
    if getattr(exc, _STEP_ATTR, None) is None:
        with contextlib.suppress(AttributeError, TypeError):
            setattr(exc, _STEP_ATTR, step)


def failed_step(exc: BaseException) -> str | None:
    """The step `mark_step` recorded on the error, if any."""
    return getattr(exc, _STEP_ATTR, None)


def _own(exc: BaseException) -> bool:
    """Errors raised by salesos itself word their message for a person; others get their type named."""
    return type(exc).__module__.split(".")[0] in ("salesos", "forecasting")


def reason(exc: BaseException) -> tuple[str, list[str]]:
    """Why the run failed, in one line, and the detail lines the error's message carries after it.

    The file, row and field are in the messages of the run's own errors (ExportError, ValidationFailed,
    DbtBuildFailed name them); an OSError names its path(s).
    """
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)", []
    lines = [line.rstrip() for line in str(exc).strip().splitlines() if line.strip()]
    if isinstance(exc, OSError) and exc.filename is not None and not lines:
        lines = [f"{exc.strerror or 'error'}: {exc.filename}"]
    head, details = (lines[0].rstrip(":"), lines[1:]) if lines else ("", [])
    if _own(exc) and not head:
        head = type(exc).__qualname__
    elif not _own(exc):
        name = type(exc).__qualname__
        module = type(exc).__module__
        name = name if module in ("builtins", "__main__") else f"{module.split('.')[0].lstrip('_')}.{name}"
        head = f"{name}: {head}" if head else name
        details = details[:_MAX_FOREIGN_DETAIL]
    return head, details


def failure_line(
    exc: BaseException,
    *,
    run_id: str,
    step: str | None = None,
    warehouse_changed: bool | None = False,
    run_log: Path | None = None,
) -> str:
    """The run's own one-line message for a failure: run, step, why, what readers see now, where the log is."""
    why, _ = reason(exc)
    step = step or failed_step(exc)
    where = f" in step {step}" if step else ""
    verb = "was interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    if warehouse_changed is None:
        published = "see `salesos versions` for the version now published"
    elif warehouse_changed:
        published = "the published warehouse was replaced before the failure (see `salesos versions`)"
    else:
        published = "the published warehouse was not changed"
    what = "" if isinstance(exc, KeyboardInterrupt) else f": {why}"
    log_part = f"; run log: {run_log}" if run_log else ""
    return f"salesos run {run_id} {verb}{where}{what}; {published}{log_part}"


def failure_text(exc: BaseException, **kwargs: object) -> str:
    """The one line and, indented below it, the details the error carries (failing checks, dbt tests)."""
    _, details = reason(exc)
    lines = [failure_line(exc, **kwargs)]  # type: ignore[arg-type]
    lines += [d if d.startswith(" ") else f"  {d}" for d in details]
    return "\n".join(lines)


def write_traceback(run_log: Path, exc: BaseException, line: str) -> None:
    """Append the message and the full traceback to the run log (through a handler of its own: not the terminal)."""
    run_log.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_log, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    try:
        handler.handle(
            logging.LogRecord("salesos.run", logging.ERROR, __file__, 0, line, None,
                              (type(exc), exc, exc.__traceback__))
        )
    finally:
        handler.close()


def published_state(path: Path) -> tuple[int, int] | None:
    """What identifies the published file's current version: a publish (an atomic rename) gives it a new inode.

    Not its modification time: a BI tool holding the file read-write may touch it without a publish.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _own_info_only(record: logging.LogRecord) -> bool:
    """The run's own INFO records, and only warnings and errors of the libraries (GX logs hundreds of lines)."""
    return record.levelno >= logging.WARNING or record.name.split(".")[0] in ("salesos", "forecasting")


@contextlib.contextmanager
def run_log(path: Path, level: int = logging.INFO) -> Iterator[logging.Handler | None]:
    """Send the log records of the run (level and above) to `path` while the block runs.

    Appends: a re-run of the same run id keeps the earlier attempt's lines above its own. The root
    logger is lowered to `level` for the block, so the caller keeps its terminal handler's own level.
    A run log that cannot be opened (a read-only data dir) yields None: the run itself says why it fails.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        logging.getLogger(__name__).warning("cannot write the run log %s: %s", path, exc)
        yield None
        return
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(_own_info_only)
    root = logging.getLogger()
    old_level = root.level
    if root.getEffectiveLevel() > level:
        root.setLevel(level)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
