"""The one error type of configuration."""


class ConfigError(Exception):
    """A missing or malformed setting; the message names it and holds no secret."""
