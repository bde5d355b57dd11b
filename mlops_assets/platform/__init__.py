"""The platform: what every model project is built from. It names no project."""
