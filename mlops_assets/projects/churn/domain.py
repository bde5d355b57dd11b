"""The Telco churn domain: column names, the known value of every categorical column, the plausible
ranges of the numeric ones, and the target's labels.

One place for these facts, read by the Pandera contracts, the cleaning rules, the model and the serving
app's request validation. Plain data with no import. Categories keep the source's own spelling ("Fiber
optic", "No internet service"): the cleaning maps other casings onto it.
"""

TARGET = "Churn"
POSITIVE_LABEL = "Yes"
TARGET_CLASSES: tuple[str, ...] = ("No", "Yes")
ID_COLUMN = "customerID"
ID_COLUMNS: tuple[str, ...] = (ID_COLUMN,)

# SeniorCitizen is a 0/1 flag written as a number, unlike every other yes/no column: it stays a number
# (a request sends what the source sends) and its contract holds it to exactly 0 or 1.
SENIOR_CITIZEN = "SeniorCitizen"
TOTAL_CHARGES = "TotalCharges"
NUMERIC_FEATURES: tuple[str, ...] = ("tenure", "MonthlyCharges", TOTAL_CHARGES, SENIOR_CITIZEN)

_YES_NO: tuple[str, ...] = ("No", "Yes")
_INTERNET_ADD_ON: tuple[str, ...] = ("No", "No internet service", "Yes")
CATEGORIES: dict[str, tuple[str, ...]] = {
    "gender": ("Female", "Male"),
    "Partner": _YES_NO,
    "Dependents": _YES_NO,
    "PhoneService": _YES_NO,
    "MultipleLines": ("No", "No phone service", "Yes"),
    "InternetService": ("DSL", "Fiber optic", "No"),
    "OnlineSecurity": _INTERNET_ADD_ON,
    "OnlineBackup": _INTERNET_ADD_ON,
    "DeviceProtection": _INTERNET_ADD_ON,
    "TechSupport": _INTERNET_ADD_ON,
    "StreamingTV": _INTERNET_ADD_ON,
    "StreamingMovies": _INTERNET_ADD_ON,
    "Contract": ("Month-to-month", "One year", "Two year"),
    "PaperlessBilling": _YES_NO,
    "PaymentMethod": ("Bank transfer (automatic)", "Credit card (automatic)", "Electronic check", "Mailed check"),
}
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(CATEGORIES)
CONTRACT = "Contract"

RAW_FEATURES: tuple[str, ...] = (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES)
SOURCE_COLUMNS: tuple[str, ...] = (ID_COLUMN, *RAW_FEATURES, TARGET)

# Ranges a plausible customer falls in: generous around the reference data (tenure up to 72 months,
# monthly charges 18-119, totals up to 8,700) so that new data is accepted, tight enough that a
# swapped column or a change of unit (cents) is caught.
VALUE_RANGES: dict[str, tuple[float, float]] = {
    "tenure": (0.0, 120.0),
    "MonthlyCharges": (0.0, 250.0),
    TOTAL_CHARGES: (0.0, 30_000.0),
    SENIOR_CITIZEN: (0.0, 1.0),
}

# The mean monthly charge of the reference data, the basis of the value of a retained customer.
AVERAGE_MONTHLY_CHARGE = 64.76
