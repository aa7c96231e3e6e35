"""User-facing errors."""


class UserInputError(Exception):
    """A user-facing error whose message is one line naming the file or key and the fix."""
