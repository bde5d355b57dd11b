"""Model and domain code with no Dagster or Spark import, shared by the pipeline and the serving app."""

import hashlib
from pathlib import Path


def _source_digest() -> str:
    sha = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        sha.update(source.name.encode())
        sha.update(source.read_bytes())
    return sha.hexdigest()[:16]


# Changes whenever the feature, model or metric code changes: recorded with every model for lineage.
MODEL_CODE_VERSION = _source_digest()
