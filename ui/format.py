"""The pages' number formats, which live in :mod:`core.formatting` so that exported page scripts (which run
without ``ui``) print the same strings."""

from core.formatting import fmt_duration, fmt_loss, format_bytes, format_si  # noqa: F401
