"""Configuration of the production profile: the instance and workspace the compose deployment uses."""
