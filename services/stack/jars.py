"""JVM jars of the stack, fetched once from Maven Central with a pinned pom.

Two poms: ``infra/maven/pom.xml`` (the Kafka broker's classpath) and
``infra/maven/flink-pom.xml`` (the PyFlink job's connector jars, for
``pipeline.jars``). Each cache directory is keyed by its pom's content hash, so
changing a version fetches a fresh set and never mixes two versions.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from services.common.errors import InfraError
from services.stack.config import REPO_ROOT

POM = REPO_ROOT / "infra" / "maven" / "pom.xml"
FLINK_POM = REPO_ROOT / "infra" / "maven" / "flink-pom.xml"


def jars_dir(cache: Path, pom: Path, *, name: str) -> Path:
    """Directory ``<cache>/<name>-<pom hash>`` holding the pom's runtime jars.

    Fetched with Maven (``dependency:copy-dependencies``) when absent; a fetch
    interrupted half-way is redone, never used.

    Args:
        cache: the jar cache (``StackConfig.jar_cache``).
        pom: the pinned pom.
        name: prefix of the cache directory and component name in errors.

    Raises:
        InfraError: Maven is missing or the download failed.
    """
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    target = cache / f"{name}-{digest}"
    if (target / ".complete").exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise InfraError(f"Maven (mvn) is needed once to fetch the {name} jars", component=name)
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
            component=name,
        )
    (partial / ".complete").write_text(digest + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def kafka_jars_dir(cache: Path, pom: Path = POM) -> Path:
    """Directory holding the broker's classpath; fetched with Maven when absent.

    Raises:
        InfraError: Maven is missing or the download failed.
    """
    return jars_dir(cache, pom, name="kafka")


def flink_jars(cache: Path, pom: Path = FLINK_POM) -> list[Path]:
    """The PyFlink job's connector jars (absolute paths), fetched when absent.

    Raises:
        InfraError: Maven is missing, the download failed, or it brought no jar.
    """
    jars = sorted(jars_dir(cache, pom, name="flink").glob("*.jar"))
    if not jars:
        raise InfraError(f"{pom} fetched no jar", component="flink")
    return [jar.resolve() for jar in jars]
