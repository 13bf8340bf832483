"""The metric catalog, the bounded series store and its Prometheus/OpenMetrics renderer."""
