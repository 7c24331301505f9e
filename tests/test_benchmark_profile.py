"""benchmarks.profile's attribution: which layer a py-spy sample belongs to, from its raw
format. Nothing is profiled here."""

import asyncio.runners
from pathlib import Path

import pytest
from benchmarks.profile import spy
from benchmarks.profile.layers import OTHER, Layers

from conduit import edge

pytestmark = pytest.mark.one_pass

SITE = "/venv/lib/python3.11/site-packages"
STDLIB = "/python/lib/python3.11"
LAYERS = Layers.of_this_interpreter()
ROOTED = Layers((Path(SITE), Path("/repo/src"), Path(STDLIB)), LAYERS.prefixes)


def _layer(raw: str) -> str:
    ((stack, _),) = spy.parse(raw)
    return ROOTED.layer(stack)


def test_a_sample_is_the_layer_of_its_innermost_frame_in_one() -> None:
    raw = (
        f"Runner.run ({STDLIB}/asyncio/runners.py:118);"
        f"Edge.__call__ (/repo/src/conduit/edge.py:79);"
        f"BaseModel.model_dump_json ({SITE}/pydantic/main.py:40);"
        f"dumps ({STDLIB}/json/__init__.py:231) 7"
    )

    assert _layer(raw) == "framework"


def test_the_longest_prefix_decides_and_a_package_is_matched_whole() -> None:
    assert _layer("Cache.read (/repo/src/conduit/cache/core.py:9) 1") == "cache"
    assert _layer("read (/repo/src/conduit/articles/reads.py:9) 1") == "Conduit, other modules"
    assert _layer(f"f ({SITE}/redis_extra/x.py:1) 1") == OTHER


def test_frames_in_no_layer_are_other() -> None:
    raw = f"_run_module_as_main (<frozen runpy>:198);dumps ({STDLIB}/json/__init__.py:231) 3"

    assert _layer(raw) == OTHER


def test_compiled_code_is_named_from_its_package_directory() -> None:
    raw = (
        f"Runner.run ({STDLIB}/asyncio/runners.py:118);"
        "Loop__run (/project/uvloop/loop.c:20313);"
        "uv_run (/project/build/libuv-x86_64/src/unix/core.c:452);"
        "0x7f3115a4524a (/usr/lib/x86_64-linux-gnu/libc.so.6) 2"
    )

    assert _layer(raw) == "HTTP server"


def test_parse_reads_stacks_and_counts() -> None:
    stacks = spy.parse("a (/x/a.py:1);b (/x/b.py:2) 5\nc (<frozen runpy>:3) 1\n")

    assert [([frame.function for frame in stack], count) for stack, count in stacks] == [
        (["a", "b"], 5),
        (["c"], 1),
    ]
    assert stacks[1][0][0].file == "<frozen runpy>"


def test_this_interpreter_names_conduit_and_the_standard_library_by_module() -> None:
    assert LAYERS.module(edge.__file__) == "conduit.edge"
    assert LAYERS.module(asyncio.runners.__file__) == "asyncio.runners"


def test_an_older_commits_middleware_is_the_edges_layer() -> None:
    """`--at` a commit before the edge: its middleware, served from a worktree, is what the edge
    replaced."""
    worktree = "/scratch/conduit-baseline-x/worktree/src/conduit"
    raw = f"RequestContext.__call__ ({worktree}/middleware.py:79) 1"

    assert LAYERS.layer(spy.parse(raw)[0][0]) == "Conduit's edge"
