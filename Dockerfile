# The redialer worker (and CLI). Build: docker build -t redialer .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md worker.py ./
COPY redialer ./redialer
COPY workflows ./workflows
COPY activities ./activities
COPY starter ./starter
COPY bench ./bench
COPY examples ./examples
RUN pip install . && useradd --create-home --uid 10001 redialer
USER redialer

# Settings come from the environment (TEMPORAL_ADDRESS, REDIALER_DATABASE_URL, ...); SIGTERM lets
# calls in progress finish before the container stops.
STOPSIGNAL SIGTERM
CMD ["redialer", "worker"]
