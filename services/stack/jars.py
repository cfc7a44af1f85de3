"""The Kafka broker's jars, fetched once from Maven Central with the pinned pom.

The cache directory is keyed by the pom's content hash, so changing a version in
``infra/maven/pom.xml`` fetches a fresh set and never mixes two versions.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from services.common.errors import InfraError
from services.stack.config import REPO_ROOT

POM = REPO_ROOT / "infra" / "maven" / "pom.xml"


def kafka_jars_dir(cache: Path, pom: Path = POM) -> Path:
    """Directory holding the broker's classpath; fetched with Maven when absent.

    Raises:
        InfraError: Maven is missing or the download failed.
    """
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    target = cache / f"kafka-{digest}"
    if (target / ".complete").exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise InfraError("Maven (mvn) is needed once to fetch the Kafka jars", component="kafka")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", f"-Djars.dir={partial}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise InfraError(
            f"fetching jars failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}",
            component="kafka",
        )
    (partial / ".complete").write_text(digest + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target
