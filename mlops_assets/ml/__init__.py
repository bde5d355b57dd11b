"""Model code with no Dagster or Spark import: evaluation per task, variant training, the gate, how a model is logged."""
