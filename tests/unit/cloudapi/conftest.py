"""Fixtures of the EAS dialect's unit tests (defined in eas_capture.py, a name no other test directory uses)."""

from eas_capture import eas, recorder  # noqa: F401
