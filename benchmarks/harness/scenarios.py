"""What each scenario sends. Requests rotate, so a scenario covers many users and articles."""

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from benchmarks.load.wrk import Request
from benchmarks.setup.database import Fixtures
from conduit.seed import SEED_PASSWORD

LIST = "/api/articles?limit=20"
FEED = "/api/articles/feed?limit=20"
MIXED_CYCLES = 4


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    targets: tuple[str, ...]
    requests: list[Request]


def login(email: str) -> Request:
    body = {"user": {"email": email, "password": SEED_PASSWORD}}
    return Request("POST", "/api/users/login", body=json.dumps(body))


def tokens(base_url: str, emails: Sequence[str]) -> dict[str, str]:
    """A fresh RealWorld token for each email, from Conduit's own login."""
    issued = {}
    for email in emails:
        request = login(email)
        response = httpx.post(
            base_url + request.path,
            content=request.body,
            headers={"Content-Type": "application/json"},
        )
        response.raise_for_status()
        issued[email] = response.json()["user"]["token"]
    return issued


def _mixed(seeded: Fixtures, tokens: dict[str, str]) -> list[Request]:
    """Per cycle of 100: 80 list and feed reads, 15 article and comment reads, 5 writes (2
    favorites of articles not yet favorited, 2 comments, 1 new article), shuffled."""
    readers = list(tokens.values())
    rng = random.Random(0)  # noqa: S311 - a fixed shuffle, not a secret
    requests: list[Request] = []
    for cycle in range(MIXED_CYCLES):
        reads = [Request("GET", LIST) for _ in range(30)]
        reads += [Request("GET", LIST, rng.choice(readers)) for _ in range(25)]
        reads += [Request("GET", FEED, rng.choice(readers)) for _ in range(25)]
        reads += [Request("GET", f"/api/articles/{rng.choice(seeded.slugs)}") for _ in range(10)]
        reads += [
            Request("GET", f"/api/articles/{rng.choice(seeded.commented_slugs)}/comments")
            for _ in range(5)
        ]
        favorites = seeded.unfavorited[cycle * 2 : cycle * 2 + 2]
        writes = [
            Request("POST", f"/api/articles/{slug}/favorite", tokens[email])
            for email, slug in favorites
        ]
        comment = json.dumps({"comment": {"body": "Thanks, this helped with our migration."}})
        writes += [
            Request("POST", f"/api/articles/{rng.choice(seeded.slugs)}/comments", token, comment)
            for token in rng.sample(readers, 2)
        ]
        article = {
            "title": "What we learned benchmarking our API",
            "description": "Numbers, surprises and a few fixes.",
            "body": "## Setup\n\n" + "We measured before we changed anything. " * 80,
            "tagList": ["performance", "python"],
        }
        writes.append(
            Request("POST", "/api/articles", rng.choice(readers), json.dumps({"article": article}))
        )
        cycle_requests = reads + writes
        rng.shuffle(cycle_requests)
        requests += cycle_requests
    return requests


def build(seeded: Fixtures, tokens: dict[str, str], conduits: tuple[str, ...]) -> list[Scenario]:
    """Every scenario, run on the Conduit targets (`conduits`) and, where it serves them, the
    floor."""
    readers = list(tokens.values())
    both = (*conduits, "floor")
    return [
        Scenario("list", f"GET {LIST}, anonymous", both, [Request("GET", LIST)]),
        Scenario(
            "list-auth",
            f"GET {LIST}, signed in ({len(readers)} users)",
            both,
            [Request("GET", LIST, token) for token in readers],
        ),
        Scenario(
            "feed",
            f"GET {FEED}, users following 5-50 authors",
            both,
            [Request("GET", FEED, token) for token in readers],
        ),
        Scenario(
            "article",
            f"GET /api/articles/{{slug}}, {len(seeded.slugs)} slugs, anonymous",
            both,
            [Request("GET", f"/api/articles/{slug}") for slug in seeded.slugs],
        ),
        Scenario(
            "comments",
            f"GET /api/articles/{{slug}}/comments, {len(seeded.commented_slugs)} slugs",
            both,
            [Request("GET", f"/api/articles/{slug}/comments") for slug in seeded.commented_slugs],
        ),
        Scenario("tags", "GET /api/tags", both, [Request("GET", "/api/tags")]),
        Scenario(
            "mixed",
            "80% list/feed, 15% article/comments, 5% writes (favorite, comment, new article)",
            conduits,
            _mixed(seeded, tokens),
        ),
        Scenario(
            "login",
            "POST /api/users/login (argon2id by design)",
            conduits,
            [login(email) for email in tokens],
        ),
    ]
