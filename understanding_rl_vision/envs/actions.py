"""Human-readable action names and their grouping by arrow direction."""

from __future__ import annotations

DIRECTIONS: tuple[str, ...] = ("RIGHT", "LEFT", "UP", "DOWN")
NO_ARROW = "no-arrow"


def action_groups(action_names: tuple[str, ...] | list[str]) -> dict[str, tuple[int, ...]]:
    """Group action indices by the arrows they press, as the original interface does.

    An action with two arrows ("LEFT+UP", Atari's "UPLEFTFIRE") belongs to both groups; one with
    none ("NOOP", "FIRE") belongs to "no-arrow". Empty groups are left out.
    """
    groups: dict[str, list[int]] = {name: [] for name in (*DIRECTIONS, NO_ARROW)}
    for index, name in enumerate(action_names):
        upper = name.upper()
        arrows = [d for d in DIRECTIONS if d in upper]
        for arrow in arrows or [NO_ARROW]:
            groups[arrow].append(index)
    return {name: tuple(indices) for name, indices in groups.items() if indices}
