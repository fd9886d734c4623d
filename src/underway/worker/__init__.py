"""The worker, by role: `loop` (claim, dispatch, supervise, signals, stop), `attempt` (run one
job), `outcomes` (how an attempt ends: pure decisions), `writer` (outcomes in batches: what a
crash can re-run), `upkeep` (heartbeats, rescue, reports, pruning) and `idle` (waiting)."""

from .loop import Worker

__all__ = ["Worker"]
