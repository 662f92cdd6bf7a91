FROM python:3.11-slim

# Keep VERSION in step with pyproject.toml's; pass SOURCE_URL to name the repository.
ARG VERSION=0.1.0
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="sii-authorization-assistant" \
      org.opencontainers.image.description="Telegram bot that guides a Chilean accounting firm's clients through authorizing the firm's representative in the SII portal." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE_URL}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    DATABASE_PATH=/app/data/authorizations.sqlite3

# Tesseract with its Spanish data reads clients' screenshots of the SII's answer
# (bot/services/screenshot_reader.py; README, "Reading the confirmation screenshot"). Debian's
# own versions of the base image, as its security updates come: not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-spa \
    && rm -rf /var/lib/apt/lists/*

# The exact dependency versions first, each file checked against the lock's hashes: this
# layer is rebuilt only when the lock changes.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock \
    && rm /tmp/requirements.lock

# Then the package itself into site-packages; its sources are removed, so only the installed
# copy can run (python -m bot from /app finds no second one).
COPY pyproject.toml README.md /tmp/src/
COPY bot /tmp/src/bot
COPY conversations /tmp/src/conversations
RUN pip install --no-cache-dir --no-deps /tmp/src \
    && rm -rf /tmp/src \
    && useradd --system --uid 10001 --user-group --home-dir /app bot \
    && mkdir -p /app/data \
    && chown 10001:10001 /app/data \
    && chmod 0700 /app/data

WORKDIR /app
USER 10001:10001
VOLUME ["/app/data"]

# Healthy while the bot's polling loop keeps writing its heartbeat beside the database.
HEALTHCHECK --interval=60s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-m", "bot.services.health"]

CMD ["python", "-m", "bot"]
