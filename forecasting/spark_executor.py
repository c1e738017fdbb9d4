"""The forecast chunks as a grouped pandas function on Spark (`forecast_executor: spark`).

A chunk opens no warehouse: it reads the plan and writes its rows in the forecast work folder
(`forecasting.nightly.forecast_chunks`). On Spark each chunk is one group of `applyInPandas`, so the chunks
run on the executors side by side, each in one process, and the driver gets back what each chunk reports.
The function is the one a local run calls, so the rows are the same; the work folder and the forecast cache
must be on a filesystem every executor sees (as for Airflow workers on several machines).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def forecast_chunks_on_spark(spark: Any, work_dir: Path, chunks: list[str], **options: Any) -> list[dict]:
    """Run `forecast_chunk(work_dir, chunk, **options)` for every chunk as a Spark task; their reports, in order."""
    import pandas as pd

    work = str(work_dir)

    def run(group: pd.DataFrame) -> pd.DataFrame:
        from forecasting.nightly import forecast_chunk

        chunk = str(group["chunk"].iloc[0])
        done = forecast_chunk(Path(work), chunk, processes=1, **options)
        return pd.DataFrame({"chunk": [chunk], "report": [json.dumps(done, default=str)]})

    frame = spark.createDataFrame([(c,) for c in chunks], "chunk string").repartition(max(1, len(chunks)), "chunk")
    got = frame.groupBy("chunk").applyInPandas(run, schema="chunk string, report string").collect()
    reports = {row["chunk"]: json.loads(row["report"]) for row in got}
    missing = [c for c in chunks if c not in reports]
    if missing:
        raise RuntimeError(f"Spark returned no result for forecast chunk(s) {missing}")
    return [reports[c] for c in chunks]
