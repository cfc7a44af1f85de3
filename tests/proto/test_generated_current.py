"""The committed generated code in proto/riskstream/v1 is what scripts/gen_proto.py makes now.

Services import the committed *_pb2* files without a build step, so an edited
.proto that was not regenerated would silently run the old schema.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Every package of generated code under proto/.
PACKAGES = (Path("riskstream") / "v1", Path("riskstream") / "oip" / "v2")


def generate(root: Path, out_dir: Path) -> None:
    """Run root's scripts/gen_proto.py into out_dir with this interpreter's tools."""
    env = dict(os.environ)
    # protoc finds the protoc-gen-mypy plugin on PATH; it lives beside the interpreter.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    result = subprocess.run(
        [sys.executable, str(root / "scripts" / "gen_proto.py"), str(out_dir)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"gen_proto.py failed:\n{result.stdout}\n{result.stderr}"


def stale_files(root: Path, out_dir: Path) -> list[str]:
    """Names of generated files that differ from, or are missing beside, root's committed ones."""
    generate(root, out_dir)
    generated: dict[str, Path] = {}
    committed: dict[str, Path] = {}
    for package in PACKAGES:
        for p in (out_dir / package).iterdir():
            if p.is_file():
                generated[str(package / p.name)] = p
        for p in (root / "proto" / package).iterdir():
            if "_pb2" in p.name:
                committed[str(package / p.name)] = p
    assert generated, "gen_proto.py generated nothing"
    problems = [f"{name}: not committed" for name in sorted(generated.keys() - committed.keys())]
    problems += [f"{name}: not generated" for name in sorted(committed.keys() - generated.keys())]
    problems += [
        f"{name}: differs"
        for name in sorted(generated.keys() & committed.keys())
        if generated[name].read_bytes() != committed[name].read_bytes()
    ]
    return problems


def copy_repo(target: Path) -> Path:
    """The parts of the repository that generation reads, copied so tests may edit them."""
    for part in ("proto", "scripts"):
        shutil.copytree(ROOT / part, target / part, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_committed_generated_code_is_current(tmp_path: Path) -> None:
    problems = stale_files(ROOT, tmp_path / "out")
    assert not problems, (
        "generated protobuf code is out of date; run `python scripts/gen_proto.py`: "
        + ", ".join(problems)
    )


@pytest.mark.parametrize(
    ("old", "new", "stale"),
    [
        pytest.param(
            "// card token, never a PAN",
            "// card token (edited)",
            "riskstream/v1/events_pb2.pyi: differs",
            id="comment",
        ),
        pytest.param(
            "  CHANNEL_ATM = 5;",
            "  CHANNEL_ATM = 5;\n  CHANNEL_KIOSK = 6;",
            "riskstream/v1/events_pb2.py: differs",
            id="enum-value",
        ),
    ],
)
def test_check_detects_a_proto_edited_without_regenerating(
    tmp_path: Path, old: str, new: str, stale: str
) -> None:
    copy = copy_repo(tmp_path / "repo")
    proto = copy / "proto" / PACKAGES[0] / "events.proto"
    text = proto.read_text()
    assert old in text
    proto.write_text(text.replace(old, new, 1))
    assert stale in stale_files(copy, tmp_path / "out")


def test_check_detects_a_deleted_generated_file(tmp_path: Path) -> None:
    copy = copy_repo(tmp_path / "repo")
    (copy / "proto" / PACKAGES[0] / "scoring_pb2_grpc.py").unlink()
    assert stale_files(copy, tmp_path / "out") == [
        "riskstream/v1/scoring_pb2_grpc.py: not committed"
    ]
