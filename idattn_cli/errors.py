"""Errors the CLI reports as one line without a traceback: UserError exits with status 2, RunError with 1."""


class UserError(Exception):
    """Bad input from the user (config, data, arguments). The message names the value and the fix."""

    exit_code = 2


class RunError(UserError):
    """A run that started but could not finish (diverged, interrupted). The message gives the command that continues it."""

    exit_code = 1
