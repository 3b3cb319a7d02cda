"""Ingest: the MQTT -> Kafka bridge and telemetry writer, and relay command delivery."""
