"""Evaluation reports: a JSON file (atomic) and a plain-text table for humans."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

import numpy as np


def to_jsonable(value):
    """Recursively turn numpy scalars/arrays, Paths and non-finite floats into JSON values
    (NaN and +-Inf become ``None``)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path, report: dict) -> Path:
    """Write ``report`` as indented JSON via a temporary file renamed into place."""
    from ..fileio import atomic_output

    path = Path(path)
    with atomic_output(path, ".json") as tmp:
        tmp.write_text(json.dumps(to_jsonable(report), indent=2, sort_keys=False) + "\n", encoding="utf-8")
        tmp.chmod(0o644)  # the temporary file is created 0600
    return path


def format_value(value, digits: int = 4) -> str:
    """Compact text for a table cell: floats to ``digits`` significant figures, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            return "-"
        return f"{float(value):.{digits}g}"
    return str(value)


def format_table(rows: Sequence[Sequence], header: Optional[Sequence[str]] = None, digits: int = 4) -> str:
    """Left-aligned first column, right-aligned others, columns padded to their widest cell."""
    cells: List[List[str]] = [[format_value(v, digits) for v in row] for row in rows]
    if header is not None:
        cells.insert(0, [str(h) for h in header])
    if not cells:
        return ""
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(max(map(len, cells)))]
    lines = []
    for n, row in enumerate(cells):
        parts = [c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(parts).rstrip())
        if header is not None and n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_rows(summary: dict, names: Iterable[str]) -> List[list]:
    """Rows ``[metric, mean, +-ci95, n]`` from ``{metric: {"mean", "ci95", "n"}}``."""
    return [[name, summary[name]["mean"], summary[name]["ci95"], summary[name]["n"]]
            for name in names if name in summary]
