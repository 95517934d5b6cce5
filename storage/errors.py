"""Errors raised by the store. Every message names what is wrong and how to fix it.

- ``StoreError``: the base class; also used for I/O faults (unwritable or full data directory,
  malformed ``HEADLAB_DB``).
- ``NotFound``: an id or name that does not exist.
- ``Conflict``: the request contradicts the stored state (duplicate name, finishing a cancelled
  run, deleting a running run).
- ``SchemaError``: the database schema is missing, out of date, or newer than this headlab.
- ``InvalidInput``: a value the store refuses to write (e.g. a NaN result value).
- ``CorruptArtifact``: a stored file is missing or its bytes no longer match its sha256.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class NotFound(StoreError):
    """The requested row does not exist."""


class Conflict(StoreError):
    """The request contradicts the current stored state; nothing was written."""


class SchemaError(StoreError):
    """The database schema does not match this version of headlab."""


class InvalidInput(StoreError):
    """The caller passed a value the store will not write; nothing was written."""


class CorruptArtifact(StoreError):
    """An artifact file is missing, or its size or sha256 differs from what was stored."""
