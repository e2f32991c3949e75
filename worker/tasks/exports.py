"""Data exports to CSV or JSON files under ``<data dir>/exports``."""

from __future__ import annotations

import csv
import json
import time
from datetime import datetime
from typing import Any, Literal

from worker.domain.schema import ExportKind
from worker.domain.store import audit, transaction
from worker.files import atomic_write
from worker.tasks.base import TaskpulseTask


def export_data(
    self: TaskpulseTask, kind: ExportKind = "bills", fmt: Literal["csv", "json"] = "csv"
) -> dict[str, Any]:
    """Write every row of one table to a new CSV or JSON file; return its path and row count."""
    stamp = datetime.now(self.settings.zone).strftime("%Y%m%dT%H%M%S")
    path = self.settings.data_dir / "exports" / f"{kind}-{stamp}-{self.request.id}.{fmt}"
    with self.store() as conn:
        # One read transaction: the file is a consistent snapshot even while others write.
        with transaction(conn):
            cursor = conn.execute(f"SELECT * FROM {kind} ORDER BY 1")  # kind is one of ExportKind
            columns = [column[0] for column in cursor.description]
            rows = [tuple(row) for row in cursor.fetchall()]
        with atomic_write(path, newline="") as handle:
            if fmt == "csv":
                writer = csv.writer(handle)
                writer.writerow(columns)
                writer.writerows(rows)
            else:
                json.dump([dict(zip(columns, row, strict=True)) for row in rows], handle, indent=1)
        with transaction(conn):
            audit(conn, "data.exported", kind=kind, fmt=fmt, rows=len(rows), path=str(path))
    return {
        "path": str(path),
        "kind": kind,
        "fmt": fmt,
        "rows": len(rows),
        "exported_at": time.time(),
    }


TASKS = (export_data,)
