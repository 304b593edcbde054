# madoguchi's container image. Build:   docker build -t madoguchi .
# Where no registry is reachable, build on a base of your own with Python 3.11 (e.g. Debian 12's python3, as
# scripts/docker-lib.sh makes it):      docker build --build-arg BASE_IMAGE=madoguchi-base:bookworm -t madoguchi .
# See docs/deploy.md. The base must have python3 (3.11) with venv; the official image has it at
# /usr/local/bin, Debian's at /usr/bin: both stages are FROM the same base, so the venv's interpreter link holds.
ARG BASE_IMAGE=python:3.11-slim

# ---- builder: wheels for madoguchi and every dependency, installed into /opt/venv ----
FROM ${BASE_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore PIP_PROGRESS_BAR=off \
    PYTHONDONTWRITEBYTECODE=1
# Extra CAs for pip only (a TLS-intercepting proxy); this stage's layers never reach the runtime image.
COPY docker/extra-ca/ /tmp/extra-ca/
RUN set -eu; \
    bundle=/tmp/pip-ca.pem; : >"$bundle"; \
    for f in /etc/ssl/certs/ca-certificates.crt /tmp/extra-ca/*.pem /tmp/extra-ca/*.crt; do \
        if [ -f "$f" ]; then cat "$f" >>"$bundle"; fi; \
    done; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version'
ENV PIP_CERT=/tmp/pip-ca.pem
# The dependencies first (from pyproject.toml alone), so a change of our code reuses this layer.
COPY pyproject.toml /src/
RUN /opt/venv/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("/src/pyproject.toml", "rb"))["project"]["dependencies"]))' >/tmp/requirements.txt \
    && /opt/venv/bin/pip wheel --wheel-dir /wheels -r /tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-index --find-links /wheels -r /tmp/requirements.txt
COPY README.md /src/
COPY config /src/config
COPY models /src/models
COPY workflow /src/workflow
COPY handlers /src/handlers
COPY bot /src/bot
COPY migrations /src/migrations
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels /src \
    && /opt/venv/bin/pip install --no-index --no-deps /wheels/madoguchi-*.whl \
    && /opt/venv/bin/pip uninstall -q -y pip setuptools
# pip byte-compiles what it installs, so the runtime, whose user cannot write /opt/venv, starts without compiling.
# pip and setuptools leave the venv: nothing at run time imports them (nor pkg_resources).

# ---- runtime: the base, the venv, a user of its own; no compilers, no pip caches, no build CAs ----
FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 LANG=C.UTF-8 \
    MADOGUCHI_HOST=0.0.0.0 MADOGUCHI_PORT=3000
# uid/gid 10001: no clash with a host user's files on a bind mount. The SQLite default lives in data/, made here
# with its owner, so a named volume mounted there starts out writable by the user (docker copies the owner).
RUN groupadd --system --gid 10001 madoguchi \
    && useradd --system --uid 10001 --gid madoguchi --home-dir /var/lib/madoguchi --create-home \
        --shell /usr/sbin/nologin madoguchi \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/madoguchi/data
ENV DATABASE_URL=sqlite:////var/lib/madoguchi/data/madoguchi.db
COPY --from=builder /opt/venv /opt/venv
COPY docker/entrypoint.sh /usr/local/bin/madoguchi-entrypoint
COPY docker/healthcheck.py /usr/local/lib/madoguchi-healthcheck.py
USER 10001:10001
WORKDIR /var/lib/madoguchi
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/lib/madoguchi-healthcheck.py"]
ENTRYPOINT ["madoguchi-entrypoint"]
CMD ["serve"]
