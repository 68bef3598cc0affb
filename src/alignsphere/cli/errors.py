"""The error type that subcommands raise for bad input."""


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""
