# The otel_mlmon demo as a container: it trains a scikit-learn classifier,
# serves it with Flask inside the container, sends itself traffic with drift
# and low-confidence rows, and exports traces, metrics and logs over OTLP to
# the Collector named by OTEL_EXPORTER_OTLP_ENDPOINT.
# Built by docker-compose.yml from the repository root:
#   docker build -f examples/demo.Dockerfile .
FROM python:3.12-slim

WORKDIR /src
COPY pyproject.toml README.md ./
COPY otel_mlmon ./otel_mlmon
RUN pip install --no-cache-dir ".[sklearn]"

RUN useradd --create-home demo
USER demo
WORKDIR /home/demo

ENV OTEL_SERVICE_NAME=ml-demo \
    OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \
    OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector:4318 \
    PYTHONUNBUFFERED=1

# --loops 0 repeats the traffic until the container stops.
CMD ["otel-mlmon", "demo", "--loops", "0"]
