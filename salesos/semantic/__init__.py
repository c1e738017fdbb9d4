"""The semantic layer: dbt semantic models and MetricFlow metrics answered against a published warehouse.

The metrics are declared once, in `dbt_project/models/semantic/*.yml`; the nightly build writes dbt's
semantic manifest into the build copy (`semantic.semantic_manifest`), so every published version, kept
copy and rollback answers `salesos metrics` with the definitions it was built with.
"""

from salesos.semantic.manifest import MANIFEST_TABLE, ManifestMissing, read_manifest, store_manifest
from salesos.semantic.metrics import MetricQueryError, SemanticLayer, list_metrics, query_metrics

__all__ = ["MANIFEST_TABLE", "ManifestMissing", "MetricQueryError", "SemanticLayer", "list_metrics",
           "query_metrics", "read_manifest", "store_manifest"]
