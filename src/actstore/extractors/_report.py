"""What an :func:`~actstore.extractors.extract` call did: :class:`ExtractionReport`."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from actstore.extractors._plan import ExtractionPlan

__all__ = ["ExtractionReport", "complete_report", "shard_done_report"]


@dataclass(frozen=True, kw_only=True)
class ExtractionReport:
    """What an :func:`extract` call did.

    Attributes
    ----------
    status : str
        ``"dry-run"``, ``"written"`` (this call wrote blocks), ``"already-complete"`` (the set was
        complete: nothing done) or ``"shard-done"`` (this worker's blocks were all written already).
    plan : ExtractionPlan
    out, set_name : str
    blocks_written : int
    blocks_total : int
    complete : bool
        Whether every block of the set is recorded after this call.
    tokens : int
        Real tokens run through the model by this call.
    seconds : float
    bytes_written : int
        Uncompressed bytes of the blocks this call wrote.
    message : str
    """

    status: str
    plan: ExtractionPlan
    out: str
    set_name: str
    blocks_written: int = 0
    blocks_total: int = 0
    complete: bool = False
    tokens: int = 0
    seconds: float = 0.0
    bytes_written: int = 0
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["plan"] = self.plan.to_dict()
        return d


def complete_report(
    plan: ExtractionPlan, writer: Any, out: str, set_name: str, t0: float
) -> ExtractionReport:
    """The report of a re-run that found the whole set already written."""
    return ExtractionReport(
        status="already-complete",
        plan=plan,
        out=out,
        set_name=set_name,
        blocks_total=writer.n_blocks,
        complete=True,
        seconds=time.perf_counter() - t0,
        message=f"prompt set {set_name!r} in {out} is already complete; nothing to do",
    )


def shard_done_report(
    writer: Any,
    make_plan: Any,
    widths: dict[str, int],
    out: str,
    set_name: str,
    shard_t: tuple[int, int] | None,
    t0: float,
) -> ExtractionReport:
    plan, _ = make_plan(writer.block_size, writer.n_blocks, [], widths)
    who = f"shard {shard_t[0]}/{shard_t[1]}" if shard_t else "this run"
    return ExtractionReport(
        status="shard-done",
        plan=plan,
        out=out,
        set_name=set_name,
        blocks_total=writer.n_blocks,
        complete=writer.is_complete(),
        seconds=time.perf_counter() - t0,
        message=f"{who}: all its blocks of {set_name!r} are already written; nothing to do",
    )
