"""Ingest: gateways enrol, prove and deliver signed batches; the cloud verifies, dedupes and stores them."""
