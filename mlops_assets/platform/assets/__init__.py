"""Builders of a project's assets, one module per kind: data (Spark), training, evaluation, deployment, ledger, monitoring."""
