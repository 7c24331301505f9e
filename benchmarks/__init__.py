"""The benchmark harness (`./dev bench`): Conduit against the floor, on a seeded PostgreSQL."""
