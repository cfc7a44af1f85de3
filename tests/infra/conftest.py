"""Shared checks of the deployment files (Docker Compose, Kubernetes): a container's
``RISKSTREAM_*`` environment must be one its service reads, with values that parse."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass

import pytest

from services.common.kafka import KafkaClientSettings
from services.controller.config import ControllerConfig
from services.drift.config import DriftConfig
from services.feature_store.config import FeatureStoreConfig
from services.scoring.config import ScoringConfig
from services.stack.config import REPO_ROOT
from services.trainer.config import TrainerConfig

#: Environment prefixes each entry point reads (its own config, Kafka, the feature store).
PREFIXES: dict[str, tuple[str, ...]] = {
    "services.scoring": ("RISKSTREAM_SCORING_", "RISKSTREAM_KAFKA_"),
    "services.controller": ("RISKSTREAM_CONTROLLER_", "RISKSTREAM_KAFKA_"),
    "services.drift": ("RISKSTREAM_DRIFT_", "RISKSTREAM_KAFKA_"),
    "services.trainer": ("RISKSTREAM_TRAINER_", "RISKSTREAM_KAFKA_", "RISKSTREAM_FEATURES_",
                         "RISKSTREAM_REGISTRY_"),
    "services.feature_store": ("RISKSTREAM_FEATURES_", "RISKSTREAM_KAFKA_"),
}  # fmt: skip
#: Variables outside the per-service prefixes that services/stack/config.py reads.
STACK_VARIABLES = {"RISKSTREAM_HOME", "RISKSTREAM_STACK_CONFIG"}


def kafka_variables() -> set[str]:
    """Every ``RISKSTREAM_KAFKA_*`` name services/common/kafka.py reads."""
    source = (REPO_ROOT / "services" / "common" / "kafka.py").read_text()
    return set(re.findall(r'"(RISKSTREAM_KAFKA_[A-Z_]+)"', source))


@dataclass(frozen=True)
class ServiceSettings:
    """What a container's environment configures, parsed by the service's own code."""

    module: str
    config: object
    kafka: KafkaClientSettings

    @property
    def listen_addresses(self) -> dict[str, str]:
        """Field → value of every address the service listens on (its ``BindHost`` fields)."""
        if not is_dataclass(self.config):
            return {}
        return {f.name: getattr(self.config, f.name) for f in fields(self.config)
                if str(f.type) == "BindHost"}  # fmt: skip

    @property
    def loopback_listeners(self) -> dict[str, str]:
        """The listen addresses no other container or pod reaches (loopback)."""
        return {k: v for k, v in self.listen_addresses.items() if _is_loopback(v)}


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: the container's own, say


def parse_service_env(module: str, env: Mapping[str, str]) -> ServiceSettings:
    """Parse ``env`` the way ``python -m <module>`` does; fail on a name it does not read.

    Raises:
        AssertionError: a ``RISKSTREAM_*`` variable no config of ``module`` reads.
        ConfigError: a known variable with a bad value (the service would not start).
    """
    assert module in PREFIXES, f"{module} is not a riskstream entry point"
    for name in env:
        if not name.startswith("RISKSTREAM_") or name in STACK_VARIABLES:
            continue
        assert name.startswith(PREFIXES[module]), f"{module} reads no {name}"
        if name.startswith("RISKSTREAM_KAFKA_"):
            assert name in kafka_variables(), f"services/common/kafka.py reads no {name}"
    parsers: dict[str, Callable[[Mapping[str, str]], object]] = {
        "services.scoring": ScoringConfig.from_env,
        "services.controller": ControllerConfig.from_env,
        "services.drift": DriftConfig.from_env,
        "services.trainer": lambda e: TrainerConfig.from_env(e),
        "services.feature_store": FeatureStoreConfig.from_env,
    }
    if module == "services.trainer":
        FeatureStoreConfig.from_env(env)
    return ServiceSettings(
        module, parsers[module](env), KafkaClientSettings.from_env(env, client_id="check")
    )


@pytest.fixture
def service_env() -> Callable[[str, Mapping[str, str]], ServiceSettings]:
    """:func:`parse_service_env`."""
    return parse_service_env
