"""Where a server's reads ran, from its /metrics: on the replica, or on the primary and why."""

import re

import httpx

from benchmarks.replicas.cluster import REQUEST_TIMEOUT_SECONDS

# conduit_db_reads_total{target} and conduit_db_replica_fallbacks_total{reason}.
_COUNTED = re.compile(
    r'^conduit_db_(reads|replica_fallbacks)_total\{\w+="([^"]+)"\} (\S+)$', re.MULTILINE
)
Counts = dict[tuple[str, str], float]


def parse_counts(text: str) -> Counts:
    """The reads by target (a replica's name, or primary) and the fallbacks to the primary by
    reason, over the workers, from a scrape of /metrics."""
    return {(family, label): float(value) for family, label, value in _COUNTED.findall(text)}


def scrape(base_url: str) -> Counts:
    url = f"{base_url}/metrics"
    return parse_counts(httpx.get(url, trust_env=False, timeout=REQUEST_TIMEOUT_SECONDS).text)


def on_replica(before: Counts, after: Counts) -> str:
    """The share of the reads between two scrapes that ran on a replica, and of those that
    went to the primary, why; "-" without replicas (nothing counted)."""
    delta = {key: value - before.get(key, 0.0) for key, value in after.items()}
    reads = {label: count for (family, label), count in delta.items() if family == "reads"}
    total = sum(reads.values())
    if not total:
        return "-"
    reasons = ", ".join(
        f"{label} {count / total:.0%}"
        for (family, label), count in delta.items()
        if family == "replica_fallbacks" and count
    )
    share = f"{1 - reads.get('primary', 0.0) / total:.0%}"
    return f"{share} ({reasons})" if reasons else share
