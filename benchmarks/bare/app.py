"""One route, `GET /health/live`, answered as Conduit answers it, on FastAPI and pydantic, with
SQLAlchemy's asyncio layer imported as an app that reads a database would import it."""

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy.ext import asyncio as sqlalchemy_asyncio  # noqa: F401 - its import is measured


class Live(BaseModel):
    status: str


app = FastAPI()


@app.get("/health/live")
async def live() -> Live:
    return Live(status="ok")
