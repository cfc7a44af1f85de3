"""The rollback runbook (docs/runbooks/model-rollback.md), run as written.

Its own commands, read from the page, run through the real CLI against a real scorer
process and a model-updates topic of this test (so the shared stack's models are
untouched): only the scorer address, the tokens file and the topic are added.
"""

from __future__ import annotations

import json
import shlex
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from riskstream.v1 import events_pb2
from services.cli.__main__ import main
from services.common.kafka import EventProducer, KafkaClientSettings
from services.registry.publish import KafkaModelVersionPublisher
from services.registry.store import LocalArtifactStore
from services.scoring.testing import ScorerProcess, build_test_artifact
from services.stack import StackConfig
from services.stack.config import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PAGE = REPO_ROOT / "docs" / "runbooks" / "model-rollback.md"
CHAMPION = events_pb2.MODEL_STATUS_CHAMPION
CANARY = events_pb2.MODEL_STATUS_CANARY


def page_commands() -> list[list[str]]:
    """argv (after ``riskstream``) of each command in the page's bash blocks, in order."""
    commands, in_bash = [], False
    for line in PAGE.read_text().splitlines():
        if line.startswith("```"):
            in_bash = line.strip() == "```bash" if not in_bash else False
        elif in_bash:
            words = shlex.split(line, comments=True)
            if words[:1] == ["riskstream"]:
                commands.append(words[1:])
    return commands


def find(commands: list[list[str]], *words: str) -> list[str]:
    matches = [c for c in commands if all(w in c for w in words)]
    assert matches and all(m == matches[0] for m in matches), f"{words}: {matches}"
    return matches[0]


class Scorer:
    """A scorer on its own model-updates and scores topics, and the CLI's flags for it."""

    def __init__(self, stack: StackConfig, tmp: Path, updates: str, scores: str) -> None:
        tokens = {"score": "score-" + uuid.uuid4().hex, "admin": "admin-" + uuid.uuid4().hex}
        self.tokens_file = tmp / "tokens.json"
        self.tokens_file.write_text(json.dumps(tokens))
        self.env = {
            "RISKSTREAM_KAFKA_BOOTSTRAP": stack.kafka.bootstrap_servers,
            "RISKSTREAM_SCORING_REDIS_URL": f"redis://127.0.0.1:{stack.redis.port}/0",
            "RISKSTREAM_SCORING_MODEL_UPDATES_TOPIC": updates,
            "RISKSTREAM_SCORING_SCORES_TOPIC": scores,
            "RISKSTREAM_SCORING_STATE_DIR": str(tmp),
            "RISKSTREAM_SCORING_TOKENS_FILE": str(self.tokens_file),
            "RISKSTREAM_SCORING_CARD_HASH_KEY_FILE": str(tmp / "card.key"),
            "RISKSTREAM_SCORING_METRICS_PORT": "0",
        }
        self.updates = updates
        self.process: ScorerProcess | None = None

    def start(self, log: Path) -> None:
        self.process = ScorerProcess(self.env, log)

    def argv(self, command: list[str]) -> list[str]:
        """The page's command, pointed at this scorer and topic."""
        assert self.process is not None
        target = ["--target", f"127.0.0.1:{self.process.port}", "--tokens-file",
                  str(self.tokens_file)]  # fmt: skip
        if command[0] in ("rollout", "score"):
            return [command[0], *target, *command[1:]]
        if command[0] == "models":
            return [command[0], "--topic", self.updates, *command[1:]]
        return command


@pytest.fixture
def scorer(running_stack: StackConfig, make_topic, tmp_path: Path, monkeypatch) -> Iterator[Scorer]:
    updates = make_topic("model-updates", partitions=1, dlq=False)
    scores = make_topic("scores", partitions=1, dlq=False)
    s = Scorer(running_stack, tmp_path, updates, scores)
    for key, value in s.env.items():
        monkeypatch.setenv(key, value)  # the CLI reads the same settings
    kafka = KafkaClientSettings(running_stack.kafka.bootstrap_servers, client_id="runbook-test")
    sink = KafkaModelVersionPublisher(EventProducer(kafka), topic=updates)
    store = LocalArtifactStore(tmp_path / "models")
    # v1 then v2 as champions (v1 becomes last good), v3 on canary at 10 %.
    for version, seed, status, extra in (
        ("v1", 1, CHAMPION, {}),
        ("v2", 2, CHAMPION, {}),
        ("v3", 3, CANARY, {"canary_weight": 0.1}),
    ):
        artifact = build_test_artifact(store, version=version, seed=seed)
        sink.publish(artifact.record(status, reason=f"published {version}", **extra).to_event())
    s.start(tmp_path / "scorer.log")
    yield s
    assert s.process is not None
    s.process.stop()


def run(capsys, argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, f"riskstream {shlex.join(argv)}: exit {code}\n{out}\n{err}"
    return out


def roles(listing: str) -> dict[str, tuple[str, str]]:
    rows = (line.split() for line in listing.splitlines() if line.startswith("v"))
    return {row[0]: (row[1], row[2]) for row in rows}


def test_rollback_runbook_commands_on_a_running_scorer(scorer: Scorer, capsys) -> None:
    commands = page_commands()
    listing = find(commands, "rollout", "list")
    stop_canary = find(commands, "canary", "CANARY_VERSION", "0")
    rollback = find(commands, "rollback")
    models = next(c for c in commands if c == ["models"])
    score = find(commands, "score")

    # 1. who serves what
    assert roles(run(capsys, scorer.argv(listing))) == {
        "v2": ("champion", "90.0%"), "v3": ("canary", "10.0%"), "v1": ("candidate", "0.0%"),
    }  # fmt: skip

    # 2a. the canary is bad: weight 0 archives it, the champion stays
    argv = [w.replace("CANARY_VERSION", "v3") for w in stop_canary]
    run(capsys, scorer.argv(argv))
    after = roles(run(capsys, scorer.argv(listing)))
    assert after["v2"] == ("champion", "100.0%") and "canary" not in {r for r, _ in after.values()}

    # 2b. the champion is bad: the last-good version takes the role back
    run(capsys, scorer.argv(rollback))
    after = roles(run(capsys, scorer.argv(listing)))
    assert after["v1"] == ("champion", "100.0%")

    # 3. the log says the same, with the reasons the runbook gives
    out = run(capsys, scorer.argv(models))
    assert out.splitlines()[0] == "fraud-xgb: champion v1"
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  v")}
    assert "archived" in rows["v2"] and "champion p99 over SLO" in rows["v2"]
    assert "archived" in rows["v3"] and "canary error rate" in rows["v3"]
    response = json.loads(run(capsys, scorer.argv(score)))
    assert (response["model_version"], response["route"]) == ("v1", "ROUTE_CHAMPION")
