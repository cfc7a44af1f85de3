"""Reading a Prometheus ``/metrics`` page: the stack's health checks, tests and load tests.

Every reader of our services' metrics wants the same two things: the samples of a
page (parsed by prometheus-client's own text parser, so label escaping and
``_total`` / ``_count`` suffixes are read as Prometheus writes them) and a sum over
the label sets that match. One copy here instead of a regex or a parse loop per
caller.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def parse_samples(text: str) -> list[Sample]:
    """Every sample of an exposition-format page, in page order.

    Examples:
        >>> page = 'rpc_seconds_count{code="OK",method="Score"} 5.0\\nup 1.0\\n'
        >>> [(s.name, s.labels, s.value) for s in parse_samples(page)]
        [('rpc_seconds_count', {'code': 'OK', 'method': 'Score'}, 5.0), ('up', {}, 1.0)]
    """
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def scrape(url: str, timeout_s: float = 5.0) -> list[Sample]:
    """The samples an endpoint serves now.

    Raises:
        OSError: the endpoint did not answer (callers turn that into their own verdict).
    """
    with urllib.request.urlopen(url, timeout=timeout_s) as reply:
        return parse_samples(reply.read().decode(errors="replace"))


def total(samples: Iterable[Sample], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0.0 when none do).

    Examples:
        >>> page = (
        ...     'rpc_seconds_count{code="OK",method="Score"} 5.0\\n'
        ...     'rpc_seconds_count{code="OK",method="ModelInfer"} 2.0\\n'
        ...     'rpc_seconds_count{code="INTERNAL",method="Score"} 1.0\\n'
        ... )
        >>> samples = parse_samples(page)
        >>> total(samples, "rpc_seconds_count"), total(samples, "rpc_seconds_count", method="Score")
        (8.0, 6.0)
        >>> total(samples, "rpc_seconds_count", code="OK", method="Score"), total(samples, "nope")
        (5.0, 0.0)
    """
    return sum(
        (
            s.value
            for s in samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ),
        0.0,
    )
