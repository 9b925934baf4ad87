# syntax=docker/dockerfile:1
#
# evalserve images. Targets:
#   api     slim CPU image running `evalserve serve` (also used for `evalserve migrate` and for
#           CPU-only workers):            docker build --target api -t evalserve-api .
#   worker  CUDA-enabled PyTorch base running `evalserve worker` on GPU hosts:
#                                         docker build --target worker -t evalserve-worker .
#
# Nothing secret is baked in: every setting comes from EVALSERVE_* environment variables at run
# time (see app/config.py). Layers are ordered so that a code change reinstalls no dependency:
# pyproject.toml and an empty package stub first, dependencies, then the code.
#
# The code is installed editable from /srv/evalserve because `evalserve migrate` finds
# alembic.ini and migrations/ beside the `app` package (app/db/migrate.py).

ARG PYTHON_IMAGE=python:3.11-slim
ARG PYTORCH_CUDA_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

# ---------------------------------------------------------------------------------------------
# builder: a virtual environment with CPU torch, the dependencies and the code, for `api`.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
# CPU build of torch: the API image needs no CUDA libraries (about 2 GB smaller).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch>=2.3"
WORKDIR /srv/evalserve
# Dependencies only: pyproject.toml and a stub package (README.md is only read for metadata).
COPY pyproject.toml ./
RUN mkdir app && touch app/__init__.py README.md \
    && pip install . \
    && pip uninstall -y evalserve \
    && rm -rf app build ./*.egg-info
# The code: changes here rebuild only the layers below.
COPY alembic.ini ./
COPY migrations ./migrations
COPY app ./app
RUN pip install --no-deps -e . \
    && python -m compileall -q app migrations

# ---------------------------------------------------------------------------------------------
# api: slim runtime, no compilers, non-root.
FROM ${PYTHON_IMAGE} AS api
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 evalserve \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/evalserve \
       --shell /usr/sbin/nologin evalserve \
    && install -d -o 10001 -g 10001 /var/lib/evalserve
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /srv/evalserve /srv/evalserve
# Writable working directory: the embedded default (no EVALSERVE_DATABASE_URL) keeps its SQLite
# file here.
WORKDIR /var/lib/evalserve
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('EVALSERVE_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["evalserve"]
CMD ["serve", "--host", "0.0.0.0"]

# ---------------------------------------------------------------------------------------------
# worker: PyTorch with CUDA from the base image; the other dependencies go into a venv that sees
# the base's site-packages (so pip never replaces the CUDA torch), non-root.
FROM ${PYTORCH_CUDA_IMAGE} AS worker
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -c "import sys; assert sys.version_info >= (3, 11), sys.version" \
    && python -m venv --system-site-packages /opt/venv \
    && groupadd --system --gid 10001 evalserve \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/evalserve \
       --shell /usr/sbin/nologin evalserve \
    && install -d -o 10001 -g 10001 /var/lib/evalserve
WORKDIR /srv/evalserve
COPY pyproject.toml ./
RUN mkdir app && touch app/__init__.py README.md \
    && pip install . \
    && pip uninstall -y evalserve \
    && rm -rf app build ./*.egg-info
COPY alembic.ini ./
COPY migrations ./migrations
COPY app ./app
RUN pip install --no-deps -e . \
    && python -m compileall -q app migrations
WORKDIR /var/lib/evalserve
USER 10001:10001
ENTRYPOINT ["evalserve"]
CMD ["worker"]
