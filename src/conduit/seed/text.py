"""The text of a dataset: tag names, usernames, and titles, bodies, bios and comments."""

import itertools
import random
from collections.abc import Iterator, Sequence

BODY_CHARS = (2048, 8192)
# Share of usernames with a number in them.
NUMBERED_NAME_SHARE = 0.3


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FIRST = _words(
    "ada alan alice amara anna ben carla chen chloe dan diego elena emma eric farah felix grace"
    " hana hugo ines ivan jack jana jin kai kofi lara leo lina luca maya mei mila nadia noah"
    " nora olga omar paul priya quinn rafael rosa sam sara sofia tariq theo uma vera wei yara"
    " yusuf zoe"
)
_LAST = _words(
    "abara adams baker becker chen costa davis diaz evans fischer garcia gomez hansen ito jones"
    " kim kowalski lee lopez martin meyer moreau nakamura nguyen novak okafor olsen park patel"
    " perez popescu rossi santos schmidt silva smith suzuki tanaka taylor torres wagner walker"
    " wang weber white wilson yilmaz zhang"
)
_TECH = _words(
    "python rust go java kotlin swift typescript javascript react vue svelte angular django"
    " fastapi flask rails laravel spring node deno postgres mysql sqlite redis kafka rabbitmq"
    " docker kubernetes terraform ansible aws gcp azure linux git graphql rest grpc websockets"
    " html css tailwind webassembly llvm compilers databases caching queues testing security"
    " cryptography oauth accessibility design ux performance observability logging tracing"
    " devops ci microservices monoliths serverless elixir haskell ocaml scala clojure zig"
    " c cpp dotnet csharp php ruby perl lua bash vim emacs vscode neovim machine-learning"
    " data-science pandas numpy pytorch statistics algorithms concurrency async networking"
    " http dns tls mobile android ios embedded iot gamedev opengl vulkan audio career"
    " interviews remote-work productivity open-source documentation architecture"
)
_ASPECTS = _words(
    "tips internals patterns performance testing security tooling migration basics advanced"
    " in-production best-practices pitfalls ecosystem deep-dive"
)
_NOUNS = _words(
    "service schema query index cache queue worker pipeline deploy release build test bug"
    " feature endpoint request response token session migration cluster node container"
    " function module package library framework interface protocol pattern benchmark profile"
    " latency throughput memory thread process socket stream buffer parser compiler runtime"
    " team review design decision tradeoff outage incident metric dashboard alert"
)
_VERBS = _words(
    "build ship debug scale test profile refactor deploy monitor design migrate rewrite"
    " optimise document secure automate measure simplify replace learn teach review"
)
_ADJECTIVES = _words(
    "fast slow simple robust fragile small large modern legacy reliable elegant pragmatic"
    " concurrent distributed typed dynamic lazy strict readable boring practical surprising"
)
_FILLER = _words(
    "the a an and or but so because when while if then that this these those it we you they"
    " our your their is are was were be been can will should would might must not only also"
    " just very more most less every each some many few all of in on at to for with from by"
    " about into over after before without between through during"
)
_TITLES = (
    "How to {verb} a {adj} {noun} with {tech}",
    "Why your {tech} {noun} is {adj}",
    "{n} lessons from {verb}ing {tech} in production",
    "A practical guide to {tech} {noun}s",
    "Understanding the {noun} in {tech}",
    "What I learned when we had to {verb} our {tech} {noun}",
    "{tech} vs {tech2}: choosing a {noun} for a {adj} team",
    "The {adj} way to {verb} {tech} {noun}s",
    "Stop trying to {verb} every {noun}",
    "From zero to {adj} {noun}: {tech} edition",
)


def tag_vocabulary(count: int) -> list[str]:
    combined = (f"{tech}-{aspect}" for aspect in _ASPECTS for tech in _TECH)
    return list(itertools.islice(itertools.chain(_TECH, combined), count))


class _Prose:
    """Markdown-ish English text, assembled from a pool of generated sentences."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        words = _FILLER * 3 + _NOUNS + _VERBS + _ADJECTIVES + _TECH
        self.sentences = [self._sentence(words) for _ in range(3000)]

    def _sentence(self, words: Sequence[str]) -> str:
        picked = self.rng.choices(words, k=self.rng.randint(6, 22))
        match self.rng.choices(("code", "bold", "link", "plain"), weights=(8, 6, 3, 83))[0]:
            case "code":
                picked[-1] = f"`{picked[-1]}()`"
            case "bold":
                picked[0] = f"**{picked[0]}**"
            case "link":
                picked[-1] = f"[{picked[-1]}](https://example.com/{picked[-1]})"
        return " ".join(picked).capitalize() + self.rng.choice(".....?!")

    def text(self, low: int, high: int) -> str:
        """Between `low` and `high` sentences."""
        return " ".join(self.rng.choices(self.sentences, k=self.rng.randint(low, high)))

    def title(self) -> str:
        tech, tech2 = self.rng.sample(_TECH, 2)
        return self.rng.choice(_TITLES).format(
            verb=self.rng.choice(_VERBS),
            adj=self.rng.choice(_ADJECTIVES),
            noun=self.rng.choice(_NOUNS),
            tech=tech,
            tech2=tech2,
            n=self.rng.randint(3, 12),
        )

    def body(self) -> str:
        target = self.rng.randint(BODY_CHARS[0], BODY_CHARS[1] * 15 // 16)
        parts = [self.text(2, 4)]
        size = len(parts[0])
        while size < target:
            block = self._block()
            if size + len(block) + 2 > BODY_CHARS[1]:
                break
            parts.append(block)
            size += len(block) + 2
        return "\n\n".join(parts)

    def _block(self) -> str:
        match self.rng.choices(("heading", "list", "code", "paragraph"), weights=(12, 8, 5, 75))[0]:
            case "heading":
                return "## " + self.text(1, 1).rstrip(".?!")
            case "list":
                return "\n".join("- " + self.text(1, 1) for _ in range(self.rng.randint(2, 5)))
            case "code":
                calls = (f"{self.rng.choice(_VERBS)}({self.rng.choice(_NOUNS)})" for _ in range(4))
                return "```python\n" + "\n".join(calls) + "\n```"
        return self.text(3, 7)


def _usernames(rng: random.Random, count: int) -> Iterator[str]:
    taken: set[str] = set()
    while len(taken) < count:
        name = rng.choice(("", ".", "_", "-")).join((rng.choice(_FIRST), rng.choice(_LAST)))
        if name in taken or rng.random() < NUMBERED_NAME_SHARE:
            name += str(rng.randint(1, 9999))
        if name not in taken:
            taken.add(name)
            yield name
