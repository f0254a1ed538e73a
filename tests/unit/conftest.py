"""Fixtures shared by unit tests of several folders."""

from support.span_capture import spans  # noqa: F401  (the in-memory span exporter fixture)
