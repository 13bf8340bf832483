"""HTTP routes for Prometheus scrapes and health checks."""
