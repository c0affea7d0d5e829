"""The one exception type users see: the CLI prints its message on one line and exits non-zero."""


class GeolulcError(Exception):
    """A problem with the user's input or environment, explained in one line."""
