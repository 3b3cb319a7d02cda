# One image for every meterline service; the command picks the service (`meterline --help`).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY meterline meterline
COPY gateway gateway
COPY ingest ingest
COPY rating rating
COPY api api
COPY simulators simulators
RUN pip install --no-cache-dir .
ENTRYPOINT ["meterline"]
