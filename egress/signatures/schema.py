"""The signature file at the boundary: pydantic models of one YAML document.

Conditions stay as plain YAML values here (strings, ``all``/``any``/``not`` mappings);
:mod:`egress.signatures.compile` parses them with their own file:line errors.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

Severity = Literal["informational", "low", "medium", "high", "critical"]
Status = Literal["experimental", "test", "stable", "deprecated"]
Span = Literal["1h", "24h", "7d", "cumulative"]
DedupField = Literal["signature", "tenant", "span", "window_start", "window_end", "version"]

SEVERITIES: tuple[Severity, ...] = ("informational", "low", "medium", "high", "critical")
SPANS: tuple[Span, ...] = ("1h", "24h", "7d", "cumulative")

SignatureId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=80)]
ThresholdName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$")]
Technique = Annotated[str, Field(pattern=r"^T\d{4}(\.\d{3})?$")]
Text = Annotated[str, Field(min_length=1)]
Scalar = str | int | float
Condition = Any
"""A condition as written: a string leaf or an ``all``/``any``/``not`` mapping."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThresholdModel(_Strict):
    """A named threshold: its default value and why it was chosen."""

    value: Scalar
    reason: Text


class AllocationStepModel(_Strict):
    """A sequence step met by a GPU allocation of the tenant (at its ``from`` time)."""

    name: Text
    allocation: Condition


class WindowStepModel(_Strict):
    """A sequence step met by a window of ``window`` span whose condition holds."""

    name: Text
    window: Span
    condition: Condition


def _step_kind(value: Any) -> str:
    return "allocation-step" if isinstance(value, dict) and "allocation" in value else "window-step"


#: Tags pydantic puts in error paths for a step; not keys of the file.
STEP_TAGS = ("allocation-step", "window-step")
Step = Annotated[
    Annotated[AllocationStepModel, Tag("allocation-step")]
    | Annotated[WindowStepModel, Tag("window-step")],
    Discriminator(_step_kind),
]


class SequenceModel(_Strict):
    """Earlier steps, in order, all within ``within`` before the signature's own window."""

    within: Text
    steps: list[Step] = Field(min_length=1)
    final: Text = "match"


class AmplifierModel(_Strict):
    """Points added to (or taken from) the risk score when a context condition holds."""

    name: Text
    when: Condition
    points: int = Field(ge=-100, le=100)
    reason: Text | None = None


class RiskModel(_Strict):
    """Risk score: ``base`` (default: from severity) plus amplifiers, clamped to 0-100."""

    base: int | None = Field(default=None, ge=0, le=100)
    amplifiers: list[AmplifierModel] = []


class DedupModel(_Strict):
    """Fields forming the dedup key and the interval within which one key alerts once."""

    key: list[DedupField] = Field(
        default=["signature", "tenant", "span", "window_start"], min_length=1
    )
    suppress: Text = "0s"


class SignatureModel(_Strict):
    """One signature file."""

    id: SignatureId
    title: Text
    description: Text
    severity: Severity
    version: int = Field(ge=1)
    status: Status
    references: list[Text] = []
    attack: list[Technique] = []
    window: Span
    thresholds: dict[ThresholdName, ThresholdModel] = {}
    condition: Condition
    sequence: SequenceModel | None = None
    risk: RiskModel = RiskModel()
    dedup: DedupModel = DedupModel()
