"""streamlec: erasure-coded proactive fault tolerance for stream machine learning."""

from __future__ import annotations

__version__ = "0.1.0"
