"""The California housing domain: column names, categories and the value ranges a real row can take.

One place for these facts, read by the Pandera contracts, the feature formulas and the serving app's
request validation, so that the pipeline and the API agree on what a valid row is. Plain data with no
import: it travels with the model, beside the feature formulas that read it.
"""

TARGET = "median_house_value"
CATEGORY = "ocean_proximity"
OCEAN_PROXIMITY_CATEGORIES: tuple[str, ...] = ("<1H OCEAN", "INLAND", "ISLAND", "NEAR BAY", "NEAR OCEAN")

COORDINATES: tuple[str, ...] = ("longitude", "latitude")
COUNTS: tuple[str, ...] = ("total_rooms", "total_bedrooms", "population", "households")
NUMERIC_FEATURES: tuple[str, ...] = (
    "longitude",
    "latitude",
    "housing_median_age",
    "total_rooms",
    "total_bedrooms",
    "population",
    "households",
    "median_income",
)
RAW_FEATURES: tuple[str, ...] = (*NUMERIC_FEATURES, CATEGORY)
SOURCE_COLUMNS: tuple[str, ...] = (*NUMERIC_FEATURES, TARGET, CATEGORY)

# The only feature the source leaves empty on purpose (207 rows in the reference data); the model
# imputes it, so it may be missing in training rows and in requests alike.
OPTIONAL_FEATURES: frozenset[str] = frozenset({"total_bedrooms"})

# The census caps house values at 500,001 USD; capped rows are kept and flagged, not dropped, so the
# holdout stays comparable with published results on this dataset.
TARGET_CAP = 500_001.0


# Ranges a plausible California block group falls in: generous around the reference data so that new
# data is accepted, tight enough that a swapped sign, unit or column is caught.
VALUE_RANGES: dict[str, tuple[float, float]] = {
    "longitude": (-124.6, -114.0),
    "latitude": (32.4, 42.1),
    "housing_median_age": (0.0, 100.0),
    "total_rooms": (0.0, 100_000.0),
    "total_bedrooms": (0.0, 20_000.0),
    "population": (0.0, 100_000.0),
    "households": (0.0, 20_000.0),
    "median_income": (0.0, 30.0),
    TARGET: (10_000.0, TARGET_CAP),
}
