"""Runbooks cannot drift from the CLI or the alert rules.

Every ``riskstream ...`` line of a ```bash block in docs/runbooks/*.md is parsed by
the CLI's own argparse tree; the alerts the runbooks index names are the alert rules'.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from services.cli.__main__ import build_parser
from services.stack.config import REPO_ROOT

RUNBOOKS = REPO_ROOT / "docs" / "runbooks"
ALERTS = REPO_ROOT / "infra" / "prometheus" / "rules" / "alerts.yml"
PAGES = sorted(p for p in RUNBOOKS.glob("*.md") if p.name != "README.md")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def riskstream_commands(page: Path) -> list[tuple[int, list[str]]]:
    """(line number, argv after ``riskstream``) of every CLI call in the page's bash blocks."""
    commands: list[tuple[int, list[str]]] = []
    in_bash = False
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        if line.startswith("```"):
            in_bash = line.strip() == "```bash" if not in_bash else False
            continue
        if not in_bash:
            continue
        words = shlex.split(line, comments=True)
        while words and ASSIGNMENT.match(words[0]):
            words.pop(0)  # VAR=value riskstream ...
        if words and Path(words[0]).name == "riskstream":
            commands.append((number, words[1:]))
    return commands


def test_there_is_a_runbook_per_failure() -> None:
    names = {p.stem for p in PAGES}
    assert names == {
        "model-rollback", "drift-alert", "kafka-down", "redis-down", "flink-job-failing",
        "signing-key-rotation",
    }  # fmt: skip
    index = (RUNBOOKS / "README.md").read_text()
    for page in PAGES:
        assert f"]({page.name})" in index, f"README.md does not link {page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_every_riskstream_command_parses(page: Path) -> None:
    commands = riskstream_commands(page)
    assert commands, f"{page.name} gives no riskstream command"
    parser = build_parser()
    for number, argv in commands:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:
            pytest.fail(
                f"{page.name}:{number}: `riskstream {shlex.join(argv)}` does not parse ({exc})"
            )
        assert callable(args.func), f"{page.name}:{number}"


def test_a_wrong_command_is_caught() -> None:
    page = RUNBOOKS / "model-rollback.md"
    [(_, argv)] = [c for c in riskstream_commands(page) if c[1][-2:] == ["CANARY_VERSION", "0"]]
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv[:-1])  # the weight left out
    with pytest.raises(SystemExit):
        build_parser().parse_args(["rollout", "roll-back"])


def test_alerts_of_the_index_are_the_alert_rules() -> None:
    index = (RUNBOOKS / "README.md").read_text()
    table = [line for line in index.splitlines() if line.startswith("| `")]
    named = {name for line in table for name in re.findall(r"`([A-Z][A-Za-z0-9]+)`", line)}
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert named - alerts == set(), "the runbooks name alerts the rules do not define"
    assert alerts - named == set(), "an alert has no runbook"
