"""Feature formulas, written once and evaluated by two engines.

`derived_columns` is plain arithmetic over named columns, so the same formulas run on Spark columns (the
`housing_features` asset) and on numpy arrays (the model's first pipeline step, at training and serving
time). A parity test holds the two together; there is no second copy to drift.
"""

from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.projects.housing.domain import CATEGORY, NUMERIC_FEATURES, OCEAN_PROXIMITY_CATEGORIES

# City centres, (latitude, longitude): house prices fall with the distance to the big job markets.
CITY_CENTRES: dict[str, tuple[float, float]] = {
    "san_francisco": (37.7749, -122.4194),
    "san_jose": (37.3382, -121.8863),
    "los_angeles": (34.0522, -118.2437),
    "san_diego": (32.7157, -117.1611),
    "sacramento": (38.5816, -121.4944),
}
# Coordinates rotated by these angles let axis-aligned tree splits follow the diagonal coast and valleys.
ROTATION_DEGREES: tuple[int, ...] = (15, 30, 45, 60, 75)


def category_column_name(category: str) -> str:
    slug = "".join(ch if ch.isalnum() else "_" for ch in category.lower()).strip("_")
    return f"{CATEGORY}_{slug.replace('1h', 'lt_1h')}"


def derived_columns(col: Callable[[str], Any], math: Any) -> dict[str, Any]:
    """The derived features over `col(name)`, a Spark Column or a numpy array; `math` offers `sqrt`,
    `least` and `as_float`. Only operations both engines round identically (+ - * / sqrt, min) appear,
    with trigonometry folded into constants, so the two engines agree to the bit."""
    longitude, latitude = col("longitude"), col("latitude")
    features = {
        "rooms_per_household": col("total_rooms") / col("households"),
        "bedrooms_per_room": col("total_bedrooms") / col("total_rooms"),
        "population_per_household": col("population") / col("households"),
    }
    for degrees in ROTATION_DEGREES:
        cos, sin = rotation_coefficients(degrees)
        features[f"rotated_{degrees}_x"] = longitude * cos - latitude * sin
        features[f"rotated_{degrees}_y"] = longitude * sin + latitude * cos
    for city, (city_latitude, city_longitude) in CITY_CENTRES.items():
        # Degrees of longitude shrink with latitude: scale them to be comparable with degrees of latitude.
        d_lon = (longitude - city_longitude) * float(np.cos(np.deg2rad(city_latitude)))
        d_lat = latitude - city_latitude
        features[f"distance_to_{city}"] = math.sqrt(d_lon * d_lon + d_lat * d_lat)
    features["distance_to_nearest_city"] = math.least(*[features[f"distance_to_{city}"] for city in CITY_CENTRES])
    for category in OCEAN_PROXIMITY_CATEGORIES:
        features[category_column_name(category)] = math.as_float(col(CATEGORY) == category)
    return features


def rotation_coefficients(degrees: int) -> tuple[float, float]:
    radians = float(np.deg2rad(degrees))
    return float(np.cos(radians)), float(np.sin(radians))


_NUMPY_MATH = SimpleNamespace(
    sqrt=np.sqrt, least=lambda *arrays: np.minimum.reduce(arrays), as_float=lambda values: np.asarray(values, dtype=np.float64)
)
DERIVED_FEATURES: tuple[str, ...] = tuple(derived_columns(lambda name: np.ones(1), _NUMPY_MATH))
MODEL_FEATURES: tuple[str, ...] = (*NUMERIC_FEATURES, *DERIVED_FEATURES)

def feature_matrix(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """The model's input matrix (rows x MODEL_FEATURES) from raw columns as arrays: numeric features as
    float64 (NaN for a missing `total_bedrooms`), `ocean_proximity` as strings."""
    numeric = {name: np.asarray(columns[name], dtype=np.float64) for name in NUMERIC_FEATURES}
    category = np.asarray(columns[CATEGORY], dtype=object)

    def col(name: str) -> np.ndarray:
        return category if name == CATEGORY else numeric[name]

    with np.errstate(divide="ignore", invalid="ignore"):
        derived = derived_columns(col, _NUMPY_MATH)
    return np.column_stack([numeric[name] for name in NUMERIC_FEATURES] + [derived[name] for name in DERIVED_FEATURES])


def engineer_features(frame: pd.DataFrame) -> np.ndarray:
    """The model pipeline's first step: raw feature columns in, model features out."""
    return feature_matrix({name: frame[name].to_numpy() for name in (*NUMERIC_FEATURES, CATEGORY)})


def engineered_feature_names(transformer: Any = None, input_features: Any = None) -> list[str]:
    return list(MODEL_FEATURES)
