"""The risk vocabulary: the four-colour classes of a place and the plates that are scored.

Four-colour risk classes (风险分级: 重大 / 较大 / 一般 / 低): 1 red, 2 orange, 3 yellow, 4 blue — a
class of a *place*, kept apart from an alarm's warning level (:mod:`app.taxonomy.alarms`), which
uses the same colours for another meaning.
"""

from __future__ import annotations

from typing import Final

from app.taxonomy.assets import NETWORK_NODES, PLATE_TITLES

#: Class → (colour, Chinese name, English name).
RISK_CLASSES: Final[dict[int, tuple[str, str, str]]] = {
    1: ("red", "重大", "major"),
    2: ("orange", "较大", "significant"),
    3: ("yellow", "一般", "general"),
    4: ("blue", "低", "low"),
}

#: The "plate" of scores and layers that combine every scored plate.
COMPOSITE: Final = "composite"

#: Plates that are scored (exposure is what gets harmed, never scored itself).
SCORED_PLATES: Final[tuple[str, ...]] = tuple(p for p in PLATE_TITLES if p != "exposure")

#: Kinds that are never scored although their plate is: network nodes stand for the pipes that
#: meet there (a leak at a tee is a leak of the main, scored on the main), and scoring each of a
#: network's nodes would double the lifeline rows for nothing.
UNSCORED_KINDS: Final[tuple[str, ...]] = NETWORK_NODES
