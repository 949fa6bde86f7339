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
# the worker lets calls in progress finish (30 s) before it exits.
CMD ["redialer", "worker"]
