"""The Iris domain: four measurements of a flower in centimetres, their plausible ranges, and the species.

One place for these facts, read by the Pandera contracts, the cleaning rules, the model and the serving
app's request validation. Plain data with no import.
"""

TARGET = "species"
TARGET_CLASSES: tuple[str, ...] = ("setosa", "versicolor", "virginica")
NUMERIC_FEATURES: tuple[str, ...] = ("sepal_length", "sepal_width", "petal_length", "petal_width")
RAW_FEATURES: tuple[str, ...] = NUMERIC_FEATURES
SOURCE_COLUMNS: tuple[str, ...] = (*NUMERIC_FEATURES, TARGET)

# UCI's copy of the data spells the species "Iris-setosa"; this one, from seaborn, "setosa".
SPECIES_PREFIX = "iris-"

# Centimetres, generous around the reference data (sepals 4.3-7.9 by 2.0-4.4, petals 1.0-6.9 by
# 0.1-2.5) and above zero: a length in millimetres, a negative or a zero measurement is caught.
VALUE_RANGES: dict[str, tuple[float, float]] = {
    "sepal_length": (2.0, 10.0),
    "sepal_width": (1.0, 6.0),
    "petal_length": (0.5, 9.0),
    "petal_width": (0.05, 4.0),
}

# The whole reference data is 150 rows (149 once its one repeated row is dropped): the platform's
# default minimum would refuse it. Fewer than 100 flowers leave a holdout too small to gate on.
MIN_ROWS = 100
