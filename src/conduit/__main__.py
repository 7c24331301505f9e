"""The `conduit` command (`[project.scripts]`) and `python -m conduit`.

Conduit's modules are imported with the collector off, then frozen (`gc.freeze`): the classes,
schemas, tables and routes they create live as long as the process, and collecting while they
were created traversed them again and again for a tenth of a start (docs/benchmarks.md, "Cold
start"). It is CPython's own advice for long-lived objects created at start-up (the `gc.freeze`
documentation)."""

import gc


def main() -> None:
    gc.disable()
    from conduit.cli import app  # noqa: PLC0415 (imported with the collector off)

    gc.freeze()
    gc.enable()
    app(prog_name="conduit")


if __name__ == "__main__":
    main()
