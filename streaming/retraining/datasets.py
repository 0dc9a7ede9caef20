"""Dataset snapshots: the exact rows a candidate was trained on, as a versioned Parquet file.

A snapshot's version is the sha256 of its content (pandas' row hashes of every column, in
order), so the same rows give the same version whatever the Parquet writer. Snapshots live
in the registry store next to the models: ``<registry>/<model>/datasets/<sha256>.parquet``,
with a ``.json`` sidecar holding the lineage (offsets read, counts).

>>> import tempfile
>>> frame = pd.DataFrame({"amount": [1.0, 2.0], "label": [0, 1]})
>>> with tempfile.TemporaryDirectory() as root:
...     snapshot = snapshot_dataset(frame, Path(root), "fraud", {"rows": 2})
...     again = load_dataset(Path(root), "fraud", snapshot.sha256)
>>> again.equals(frame), snapshot.rows, len(snapshot.sha256)
(True, 2, 64)
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from streaming.errors import DatasetError


@dataclass(frozen=True)
class DatasetSnapshot:
    sha256: str
    path: Path
    rows: int

    def as_lineage(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "path": str(self.path), "rows": self.rows}


def content_hash(frame: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(json.dumps([str(t) for t in frame.dtypes]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def snapshot_dataset(
    frame: pd.DataFrame, root: Path, model_name: str, lineage: dict[str, Any]
) -> DatasetSnapshot:
    """Write ``frame`` (once per content) and its lineage; return the snapshot's identity."""
    sha = content_hash(frame)
    folder = Path(root) / model_name / "datasets"
    path = folder / f"{sha}.parquet"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            temporary = path.with_suffix(".parquet.tmp")
            frame.to_parquet(temporary, index=False)
            os.replace(temporary, path)
            path.with_suffix(".json").write_text(
                json.dumps({"sha256": sha, **lineage}, indent=2, default=str)
            )
    except OSError as exc:
        raise DatasetError(f"cannot write the dataset snapshot {path}: {exc}") from exc
    return DatasetSnapshot(sha, path, len(frame))


def load_dataset(root: Path, model_name: str, sha256: str) -> pd.DataFrame:
    """A snapshot by its version; the content is re-hashed and must match."""
    path = Path(root) / model_name / "datasets" / f"{sha256}.parquet"
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read dataset {sha256[:12]}… at {path}: {exc}") from exc
    if content_hash(frame) != sha256:
        raise DatasetError(f"{path} does not match its version {sha256[:12]}…: the file was changed")
    return frame
