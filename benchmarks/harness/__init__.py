"""The harness behind `./dev bench`: Conduit against the floor (and its variants) on a seeded
PostgreSQL database. `run` runs it; `scenarios` says what each scenario sends, `trials` how the
targets take turns under wrk and what each trial counts (`redis_counters` in Redis),
`fixed_rate` the latency at a fixed rate, `explain` the plans of Conduit's statements; `report`,
`chart` and `publish` write the results."""
