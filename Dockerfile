# The redialer worker (and CLI). Build: docker build -t redialer .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
# The whole repository, less what .dockerignore leaves out (.venv, .git, tests, ...).
COPY . .
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 redialer

USER redialer
WORKDIR /home/redialer

# Settings come from the environment (TEMPORAL_ADDRESS, REDIALER_DATABASE_URL, ...). On SIGTERM
# the worker takes no new call and lets calls in progress finish (REDIALER_GRACEFUL_SHUTDOWN,
# 300 s by default) before it exits: give the container a longer stop timeout than that.
CMD ["redialer", "worker"]
