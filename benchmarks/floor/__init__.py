"""The floor: the fastest reasonable Python implementation of Conduit's read endpoints.

A raw ASGI app on asyncpg; each request is one prepared statement that builds the whole JSON
response in PostgreSQL. Conduit's read path cannot beat it, so Conduit/floor says how much of
the possible speed Conduit has.
"""
