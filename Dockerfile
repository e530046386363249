# The fastagi-router image: `docker compose up` builds it from this repository.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package needs (pyproject.toml names README.md as the long description):
# no .git, no local databases, no caches.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY fastagi_router ./fastagi_router
RUN pip install . && rm -rf /src

# An unprivileged user owns the data directory; a named volume mounted there starts
# with this ownership.
RUN useradd --system --home-dir /var/lib/fastagi-router --shell /usr/sbin/nologin fastagi \
    && mkdir -p /var/lib/fastagi-router \
    && chown fastagi:fastagi /var/lib/fastagi-router
USER fastagi
WORKDIR /var/lib/fastagi-router
VOLUME ["/var/lib/fastagi-router"]

# Container defaults; docker-compose.yml sets them too, together with agi.allow.
ENV FASTAGI_ROUTER_DB=/var/lib/fastagi-router/router.db \
    FASTAGI_ROUTER_AGI_LISTEN=0.0.0.0:4573

EXPOSE 4573

# Healthy when the FastAGI port accepts connections and, with the REST API on (the default,
# on the container's loopback), /readyz says the store answers. The command reads the same
# settings as the server (environment, $FASTAGI_ROUTER_CONFIG) and times out on its own.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["fastagi-router", "healthcheck", "--timeout", "3"]

# Exec form: the router is PID 1 and gets SIGTERM from `docker stop`, upon which it stops
# taking calls and lets the calls in progress finish.
ENTRYPOINT ["fastagi-router"]
CMD ["serve"]
