"""A model project declared outside the package: what a team adding its own model writes."""
