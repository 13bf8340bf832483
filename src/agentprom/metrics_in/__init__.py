"""OTLP metrics in: our metric records, OTel-to-Prometheus naming, accumulation and translation."""
