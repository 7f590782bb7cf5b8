"""Advice: before training (``recommend``, ``estimate``: what to choose and what it will cost) and after
(``choose``: the recommendation from measured results)."""
