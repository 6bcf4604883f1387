"""Framework requirements of each instrumentor, in the contrib convention.

The launcher checks none of them itself, because this distribution has no
``instruments`` extra, so each instrumentor checks its own tuple before it
patches anything.
"""

from __future__ import annotations

_instruments_sklearn = ("scikit-learn >= 1.3",)
_instruments_xgboost = ("xgboost >= 1.7",)
_instruments_lightgbm = ("lightgbm >= 3.3",)
_instruments_onnxruntime = ("onnxruntime >= 1.14",)
_instruments_torch = ("torch >= 2.0",)

_instruments: tuple[str, ...] = ()
"""Frameworks every instrumentor needs: none, each needs only its own."""
