"""Who streams which window, and how many batches each stream yields (pure arithmetic).

Windows are dealt round-robin: window ``w`` goes to stream ``w % streams``. A stream is the
concatenation of its windows' permuted rows, cut into batches. A DataLoader with ``in_order=True``
(its default) hands out the workers' batches round-robin, skipping workers that have finished;
:func:`consumed_per_worker` inverts that, so a count of batches taken in the main process says
where each worker stands.
"""

from __future__ import annotations

import numpy as np

__all__ = ["StreamSchedule", "consumed_per_worker"]


class StreamSchedule:
    """The epoch's windows (positions into the plan's units) dealt to *streams* streams.

    Attributes
    ----------
    windows : list[np.ndarray]
        Unit positions of each window, in epoch order.
    n_rows, n_batches : list[int]
        Rows and batches of each stream.
    """

    def __init__(
        self,
        windows: list[np.ndarray],
        counts: np.ndarray,
        *,
        streams: int,
        batch_size: int,
        drop_last: bool,
    ) -> None:
        self.windows = windows
        self.streams = streams
        sizes = [int(counts[w].sum()) for w in windows]
        self.n_rows = [sum(sizes[s::streams]) for s in range(streams)]
        if drop_last:
            self.n_batches = [n // batch_size for n in self.n_rows]
        else:
            self.n_batches = [-(-n // batch_size) for n in self.n_rows]

    def stream_windows(self, stream: int) -> range:
        """Indices of the windows of *stream*, in order."""
        return range(stream, len(self.windows), self.streams)


def consumed_per_worker(n_batches: list[int], taken: int) -> tuple[list[int], int]:
    """Batches each stream has delivered after *taken* batches of a round-robin DataLoader,
    and the stream whose batch comes next.

    Round ``r`` takes one batch from every stream that still has more than ``r`` batches, in
    stream order. A resumed DataLoader starts its cycle at worker 0 again, so worker ``i`` then
    serves stream ``(i + next) % streams``: the order stays the uninterrupted one.
    """
    out = [0] * len(n_batches)
    nxt = 0
    left = int(taken)
    r = 0
    for level in sorted(set(n_batches)):
        if left <= 0:
            break
        active = [w for w, n in enumerate(n_batches) if n > r]
        if not active or level <= r:
            continue
        rounds = min(level - r, left // len(active))
        for w in active:
            out[w] += rounds
        left -= rounds * len(active)
        r += rounds
        if r < level:  # a partial round: the first `left` active workers deliver one more
            for w in active[:left]:
                out[w] += 1
            nxt = active[left]
            left = 0
    return out, nxt
