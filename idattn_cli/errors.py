"""User-facing errors: the CLI prints their one-line message and exits with status 2."""


class UserError(Exception):
    """Bad input from the user (config, data, arguments). The message names the value and the fix."""
