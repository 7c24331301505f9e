"""The clients of an app the tests started (`conduit.clients.Clients`): read here, replaced
with `dataclasses.replace` (`app.state.clients = replace(clients_of(app), cache=...)`)."""

from fastapi import FastAPI

from conduit.clients import Clients


def clients_of(app: FastAPI) -> Clients:
    clients: Clients = app.state.clients
    return clients
