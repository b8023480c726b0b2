"""Errors the store raises; messages are safe to show a person and never carry a secret.

StoreError(Exception)
 ├── NotFound(StoreError, LookupError)           no user, key, provider, group... by that name
 ├── AlreadyExists(StoreError, ValueError)       a unique name is taken
 ├── AmbiguousPrefix(StoreError, ValueError)     a key prefix matches more than one key
 ├── InvalidValue(StoreError, ValueError)        a value the schema does not allow
 │    └── InvalidName(InvalidValue)              a name outside ``[A-Za-z0-9_.-]{1,64}``
 └── WouldWait(StoreError)                       an answer asked for now needs the database
"""

# The names read as what happened (NotFound, AlreadyExists) rather than ending in "Error".


class StoreError(Exception):
    """Base of every error the store raises on purpose."""


class NotFound(StoreError, LookupError):
    """The thing asked for does not exist."""


class AlreadyExists(StoreError, ValueError):
    """A unique name or membership already exists."""


class AmbiguousPrefix(StoreError, ValueError):
    """A key prefix matches several keys; the caller must give more characters."""


class InvalidValue(StoreError, ValueError):
    """A value outside what the schema allows."""


class InvalidName(InvalidValue):
    """A name that is empty, too long or uses characters outside ``[A-Za-z0-9_.-]``."""


class WouldWait(StoreError):
    """A lookup asked for without waiting cannot be answered so; the awaitable one can."""
