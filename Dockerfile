FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATABASE_PATH=/app/data/authorizations.sqlite3

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY conversations ./conversations
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --user-group --home-dir /app bot \
    && mkdir -p /app/data \
    && chown 10001:10001 /app/data

USER 10001:10001
VOLUME ["/app/data"]

# Healthy while the bot's polling loop keeps writing its heartbeat beside the database.
HEALTHCHECK --interval=60s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-m", "bot.health"]

CMD ["python", "-m", "bot"]
