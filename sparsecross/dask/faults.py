"""Naming the chunks suspected of killing workers (repeated losses of the same round)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence, Set

from .plan import _Chunk


def _rank_suspects(losses: Sequence[tuple[Set[int], Set[int]]]) -> list[int]:
    """The chunks of repeated worker losses, most suspect first.

    ``losses``: per loss, (chunks of the tasks on the lost worker, chunks in flight).  First
    the chunks on the lost worker at every loss (the intersection), then by how many losses
    they were on the lost worker, then by how many losses they were in flight (again the
    intersection first), then in chunk order."""
    on = Counter(ci for hit, _ in losses for ci in set(hit))
    seen = Counter(ci for hit, fl in losses for ci in set(hit) | set(fl))
    return sorted(seen, key=lambda ci: (-on[ci], -seen[ci], ci))


def _name_suspects(chunks: Sequence[_Chunk], losses: Sequence[tuple[Set[int], Set[int]]], limit: int = 6) -> str:
    """One line naming the chunks of :func:`_rank_suspects` (at most ``limit``), saying which
    ones were on the lost worker at every loss."""
    ranked = _rank_suspects(losses)
    every = [ci for ci in ranked if all(ci in hit for hit, _ in losses)]
    shown = ranked[:limit]
    more = f" and {len(ranked) - len(shown)} more" if len(ranked) > len(shown) else ""
    names = [chunks[ci].describe() for ci in shown]
    if not every:
        return f"chunks in flight: {'; '.join(names)}{more}"
    lead = f"chunks on the lost worker at every loss: {'; '.join(names[:len(every)])}"
    if len(every) >= len(shown):  # (``more``, if any, counts the rest)
        return lead + more
    return f"{lead}; also in flight: {'; '.join(names[len(every):])}{more}"
