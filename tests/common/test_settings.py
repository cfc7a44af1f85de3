"""Listen and Redis addresses: one parser (services/common/settings.py) for every service.

Each service that serves metrics reads ``RISKSTREAM_<SVC>_METRICS_HOST`` (loopback by
default); the scorer and the trainer read their Redis from ``RISKSTREAM_<SVC>_REDIS_URL``
(the local stack's by default). A bad value stops the service with the variable named.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from services.common.errors import ConfigError
from services.common.kafka import KafkaClientSettings
from services.common.settings import LOOPBACK, bind_host, redis_url
from services.controller.config import ControllerConfig
from services.drift.config import DriftConfig
from services.scoring.config import ScoringConfig
from services.stack.config import load_stack_config
from services.trainer.__main__ import RetrainHandler
from services.trainer.config import TrainerConfig

#: Environment prefix → the service's ``from_env``.
SERVICES: dict[str, Callable[[Mapping[str, str]], object]] = {
    "RISKSTREAM_SCORING_": ScoringConfig.from_env,
    "RISKSTREAM_CONTROLLER_": ControllerConfig.from_env,
    "RISKSTREAM_DRIFT_": DriftConfig.from_env,
    "RISKSTREAM_TRAINER_": TrainerConfig.from_env,
}
BAD_HOSTS = ["", "0.0.0.0:9102", "http://0.0.0.0", " 0.0.0.0", "a..b", "-x", "under_score"]
BAD_URLS = ["", "127.0.0.1:6379", "http://:s3cret@redis:6379", "redis://", "redis://redis:port",
            "redis://redis:6379/zero", "redis://redis:70000/0"]  # fmt: skip


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "127.0.0.1", "::1", "10.1.2.3", "localhost",
                                  "scoring", "pod-1.riskstream.svc.cluster.local"])  # fmt: skip
def test_bind_host_takes_ip_literals_and_host_names(host: str) -> None:
    assert bind_host("X", host) == host


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_bind_host_refuses_what_a_server_cannot_listen_on(host: str) -> None:
    with pytest.raises(ConfigError, match=r"^X_HOST="):
        bind_host("X_HOST", host)


@pytest.mark.parametrize("url", ["redis://redis:6379/0", "redis://127.0.0.1", "rediss://r:6380/2",
                                 "redis://:p%40ss@redis:6379/0", "redis://[::1]:6379"])  # fmt: skip
def test_redis_url_takes_redis_urls(url: str) -> None:
    assert redis_url("X", url) == url


@pytest.mark.parametrize("url", BAD_URLS)
def test_redis_url_refuses_others_without_echoing_them(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^X_URL is not") as caught:
        redis_url("X_URL", url)
    assert "s3cret" not in str(caught.value)  # a URL may hold a password


@pytest.mark.parametrize("prefix", SERVICES)
def test_metrics_host_defaults_to_loopback(prefix: str) -> None:
    config = SERVICES[prefix]({})
    assert config.metrics_host == LOOPBACK  # type: ignore[attr-defined]


@pytest.mark.parametrize("prefix", SERVICES)
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "metrics.local"])
def test_metrics_host_is_read_from_the_environment(prefix: str, host: str) -> None:
    config = SERVICES[prefix]({f"{prefix}METRICS_HOST": host})
    assert config.metrics_host == host  # type: ignore[attr-defined]


@pytest.mark.parametrize("prefix", SERVICES)
@pytest.mark.parametrize("host", BAD_HOSTS)
def test_a_bad_metrics_host_names_the_variable(prefix: str, host: str) -> None:
    with pytest.raises(ConfigError, match=f"^{prefix}METRICS_HOST="):
        SERVICES[prefix]({f"{prefix}METRICS_HOST": host})


def test_scorer_listen_address_is_checked_the_same_way() -> None:
    assert ScoringConfig.from_env({}).host == LOOPBACK
    assert ScoringConfig.from_env({"RISKSTREAM_SCORING_HOST": "::"}).host == "::"
    with pytest.raises(ConfigError, match=r"^RISKSTREAM_SCORING_HOST="):
        ScoringConfig.from_env({"RISKSTREAM_SCORING_HOST": "0.0.0.0:50051"})


def test_stack_redis_url_follows_its_port() -> None:
    assert load_stack_config({}).redis.url == "redis://127.0.0.1:6379/0"
    moved = load_stack_config({"RISKSTREAM_REDIS_PORT": "16379"})
    assert moved.redis.url == "redis://127.0.0.1:16379/0"


def test_scorer_redis_defaults_to_the_local_stack() -> None:
    assert ScoringConfig.from_env({}).redis_url == "redis://127.0.0.1:6379/0"
    moved = ScoringConfig.from_env({"RISKSTREAM_REDIS_PORT": "16379"})
    assert moved.redis_url == "redis://127.0.0.1:16379/0"
    named = ScoringConfig.from_env({"RISKSTREAM_SCORING_REDIS_URL": "redis://redis:6379/0"})
    assert named.redis_url == "redis://redis:6379/0"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "redis://127.0.0.1:6379/0"),
        ({"RISKSTREAM_REDIS_PORT": "16379"}, "redis://127.0.0.1:16379/0"),
        ({"RISKSTREAM_TRAINER_REDIS_URL": "redis://redis:6379/0"}, "redis://redis:6379/0"),
    ],
)
def test_trainer_trains_against_the_configured_redis(
    env: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = TrainerConfig.from_env(env)
    assert config.redis_url == env.get("RISKSTREAM_TRAINER_REDIS_URL", "")
    seen: dict[str, Any] = {}
    monkeypatch.setattr("services.trainer.runner.train_from_offline_store",
                        lambda config, **kwargs: seen.update(kwargs))  # fmt: skip
    handler = RetrainHandler(
        config, stack=load_stack_config(env), kafka=KafkaClientSettings(),
        publisher=None, topic="model-updates", offline_root=tmp_path, store=None,  # type: ignore[arg-type]
    )  # fmt: skip
    handler._train(None, "test", [])
    assert seen["redis_url"] == expected


@pytest.mark.parametrize("prefix", ["RISKSTREAM_SCORING_", "RISKSTREAM_TRAINER_"])
@pytest.mark.parametrize("url", BAD_URLS)
def test_a_bad_redis_url_names_the_variable(prefix: str, url: str) -> None:
    with pytest.raises(ConfigError, match=f"^{prefix}REDIS_URL is not"):
        SERVICES[prefix]({f"{prefix}REDIS_URL": url})


def test_trainer_overrides_keep_the_environment_redis() -> None:
    env = {"RISKSTREAM_TRAINER_REDIS_URL": "redis://redis:6379/0"}
    assert TrainerConfig.from_env(env, trees=10).redis_url == "redis://redis:6379/0"
