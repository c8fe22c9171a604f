"""actstore.locations: check local and remote locations before the work, with one-line errors.

The same checks the ``actstore`` commands make on their ``--out`` / cache arguments, for a tool or
script built on actstore that wants its bad locations refused the same way (one line naming the
location, an :class:`~actstore.errors.ActstoreError` subclass, exit 2 in the command line):

- :func:`require_local`: a local path, or a refusal of a URL where only plain file I/O is done;
- :func:`check_output_dir`: create an output folder now, so an unwritable one fails before work;
- :func:`location_errors`: a ``with`` block that turns OS and storage failures on a location
  (no such bucket, refused credentials, read-only filesystem, full disk) into those errors.
"""

from __future__ import annotations

from actstore._locations import check_output_dir, location_errors, require_local

__all__ = ["check_output_dir", "location_errors", "require_local"]
