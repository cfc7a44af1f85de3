"""Window reports on disk: one JSON document per window, the newest ``keep`` kept.

Adapter (the file system). Files are ``<dir>/<model>/<window end>-<version>.json``
written through a temporary name and renamed, so a reader never sees half a report.
"""

from __future__ import annotations

import os
from pathlib import Path

from services.drift.window_report import WindowReport


class DirectoryReportSink:
    """Writes reports under ``directory``.

    Args:
        directory: the report directory (created when missing).
        keep: newest reports kept per model.
    """

    def __init__(self, directory: Path, *, keep: int) -> None:
        self.directory = Path(directory)
        self.keep = keep

    def write(self, report: WindowReport) -> Path:
        """Write one report; returns its path."""
        folder = self.directory / report.model_name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{report.last_ms:013d}-{report.champion_version}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(report.to_json() + "\n")
        os.replace(tmp, path)
        old = sorted(folder.glob("*.json"))[: -self.keep]
        for stale in old:
            stale.unlink(missing_ok=True)
        return path
