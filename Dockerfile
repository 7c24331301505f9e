# syntax=docker/dockerfile:1
# Conduit's image (docs/deployment.md). Two stages on the same base image:
#   build    installs the pinned uv as ./dev does and syncs the locked, non-dev dependencies
#            and Conduit itself (as a wheel, not editable) into /app/.venv, bytecode compiled;
#   runtime  that virtual environment alone, run by a non-root user.
# The venv keeps the same path in both stages: its scripts and its `python` link
# (/usr/local/bin/python3.11, the same file in both) are absolute paths.
#
#   docker build -t conduit .
#   docker run --rm -p 8000:8000 -e DATABASE_URL=... -e CONDUIT_SECRET_KEY=... conduit

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build

# The same uv as ./dev (UV_VERSION there), installed the same way: pip, into a venv of its own.
ARG UV_VERSION=0.13.9
RUN python3 -m venv /opt/uv \
    && /opt/uv/bin/python -m pip install --no-cache-dir --disable-pip-version-check \
        "uv==${UV_VERSION}"

# The image's own interpreter, never a downloaded one; copy out of the cache mount (hardlinks
# cannot cross into the image's filesystem); the venv where the runtime stage expects it.
ENV UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# Dependencies first, in a layer of their own: rebuilt only when the lock (or pyproject) changes.
# README.md and LICENSE go into the wheel's metadata.
COPY pyproject.toml uv.lock README.md LICENSE ./
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --locked --no-dev --no-editable --compile-bytecode --no-install-project

# Then Conduit itself, built as a wheel and installed into the venv (migrations included).
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --locked --no-dev --no-editable --compile-bytecode


FROM ${PYTHON_IMAGE} AS runtime

# A fixed uid/gid, so that volumes and Kubernetes' runAsUser can name it. /data is the one
# place it may write: for a SQLite file (DATABASE_URL=sqlite:////data/conduit.db), if used.
RUN groupadd --system --gid 10001 conduit \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin conduit \
    && mkdir /data && chown 10001:10001 /data

# Owned by root: the process cannot change its own code.
COPY --from=build /app/.venv /app/.venv

ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CONDUIT_ENV=production

WORKDIR /app
USER 10001:10001
EXPOSE 8000

# Liveness: 200 from /health/live while the process serves. Not /health/ready, which fails
# while Redis (or the database) is down: an orchestrator that restarts unhealthy containers
# would restart every replica during a Redis outage that the API rides out. The slim image
# has no curl; urlopen raises on a refused connection and on any non-2xx status (exit 1).
# It probes port 8000: with another --port, override or disable it (--no-healthcheck).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4)"]

# Exec form: conduit is PID 1 and receives SIGTERM itself (graceful shutdown).
CMD ["conduit", "serve", "--host", "0.0.0.0", "--port", "8000"]
