"""Signatures: YAML rules over tenant windows and tenant context.

schema (pydantic) -> load (file:line errors) -> compile -> evaluate (pure) -> lint.
The language is described in the repository's ``signatures/README.md``.
"""

from __future__ import annotations

from egress.signatures.compile import Signature
from egress.signatures.evaluate import evaluate
from egress.signatures.lint import LintFinding, lint_directory
from egress.signatures.load import load_overrides, load_signatures
from egress.signatures.match import Match

__all__ = [
    "LintFinding",
    "Match",
    "Signature",
    "evaluate",
    "lint_directory",
    "load_overrides",
    "load_signatures",
]
