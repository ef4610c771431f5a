"""The figures of one protocol run (`EvalResult`) and their strict-JSON form (``metrics.json``)."""
import dataclasses
import math
from typing import Dict, Mapping, Optional

import numpy as np

# The protocols that rank every allowed item once (deterministic: a single run, std 0).
RANK_ALL = ("full", "new_items")

@dataclasses.dataclass
class EvalResult:
    """Figures of one protocol run.

    ``metrics`` maps names like ``hr@5``, ``ndcg@20``, ``auc`` to the mean over users
    (for ``sampled``, the mean over repeats of that); ``std`` to the standard deviation
    across repeats (sample std, ddof=1; 0 for a single run). ``info`` records how the
    figures were obtained (number of items, cut-offs, seed, users skipped, ...).
    """

    protocol: str
    repeats: int
    num_users: int
    metrics: Dict[str, float]
    std: Dict[str, float]
    info: Dict[str, object] = dataclasses.field(default_factory=dict)
    # With ``evaluate(..., per_user=True)``: ``users`` [U] and per metric the user's value
    # averaged over repeats [U] (NaN where undefined), for paired tests between scorers
    # evaluated with the same seed (same candidates). Not written to metrics.json.
    users: Optional[np.ndarray] = dataclasses.field(default=None, repr=False, compare=False)
    per_user: Optional[Dict[str, np.ndarray]] = dataclasses.field(default=None, repr=False, compare=False)
    # 95% confidence interval of each figure over users ([low, high]; `tfvrec.evaluation.comparison`),
    # and the paired test of the table's first row against this one (metric -> PairedTest dict).
    ci: Dict[str, list] = dataclasses.field(default_factory=dict)
    compared_with: str = ""
    comparison: Dict[str, dict] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "protocol": self.protocol,
            "repeats": self.repeats,
            "num_users": self.num_users,
            "metrics": {name: json_float(value) for name, value in self.metrics.items()},
            "std": {name: json_float(value) for name, value in self.std.items()},
            "info": json_safe(self.info),
            "ci95": json_safe(self.ci),
            "compared_with": self.compared_with,
            "paired_test": json_safe(self.comparison),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "EvalResult":
        def floats(values):
            return {name: (math.nan if value is None else float(value)) for name, value in values.items()}
        return cls(protocol=data["protocol"], repeats=int(data["repeats"]), num_users=int(data["num_users"]),
                   metrics=floats(data["metrics"]), std=floats(data["std"]), info=dict(data.get("info", {})),
                   ci=dict(data.get("ci95", {})), compared_with=data.get("compared_with", ""),
                   comparison=dict(data.get("paired_test", {})))

    def describe_protocol(self) -> str:
        """How a figure of this result was obtained, e.g. ``sampled:100, 10 repeats: mean ± std``."""
        if self.repeats > 1:
            return f"{self.protocol}, {self.repeats} repeats: mean ± std"
        return f"{self.protocol}, single run" if self.protocol in RANK_ALL else f"{self.protocol}, 1 repeat"


def json_float(value):
    value = float(value)
    return value if math.isfinite(value) else None


def json_safe(value):
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return json_float(value)
    return value
