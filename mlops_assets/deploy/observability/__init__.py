"""Monitoring of the platform as code: Prometheus configuration and alert rules, Grafana dashboards."""
