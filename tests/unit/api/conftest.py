"""Fixtures of the API unit tests: apps on a temporary home (defined in ``support.api_support``, shared with the
integration lane)."""

from support.api_support import api_home, make_app  # noqa: F401  (fixtures, registered by name)
