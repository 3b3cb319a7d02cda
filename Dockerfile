# One image for every meterline service; the command picks the service (`meterline --help`).
FROM python:3.11-slim
WORKDIR /app
# DejaVu Sans: the Cyrillic font of payment documents (billing/documents)
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY meterline meterline
COPY gateway gateway
COPY ingest ingest
COPY rating rating
COPY api api
COPY simulators simulators
COPY billing billing
RUN pip install --no-cache-dir .
ENTRYPOINT ["meterline"]
