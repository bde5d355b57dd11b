"""The six assets of the flow, upstream first, and the three that watch and use its result."""

from mlops_assets.assets.cleaning import cleaned_housing
from mlops_assets.assets.deployment import deployed_model
from mlops_assets.assets.evaluation import model_evaluation
from mlops_assets.assets.features import housing_features
from mlops_assets.assets.ingestion import raw_housing
from mlops_assets.assets.ledger import deployment_ledger
from mlops_assets.assets.monitoring import batch_predictions, feature_drift
from mlops_assets.assets.training import trained_model

HOUSING_ASSETS = [raw_housing, cleaned_housing, housing_features, trained_model, model_evaluation, deployed_model]
# Downstream of the flow and kept apart from it: `housing_pipeline` (and its tests) stay the six above.
MONITORING_ASSETS = [deployment_ledger, feature_drift, batch_predictions]
