"""Row ordering: multi-slot decisions for a homepage.

For a member, fill the page's slots top to bottom from candidate rows. Each
slot's row is drawn from Vowpal Wabbit's conditional contextual bandit
(``--ccb_explore_adf``) restricted to the rows the page rules allow there, so
its logged probability is exactly the probability it was shown with, given the
rows placed above. One event id names the page; rewards come per slot (a play
from row k) and for the whole page; each slot is joined with the foundation's
rules (reward wait, ``earliest``/``sum``, default reward, deferred activation).

The joined page is one CCB dsjson line, read as is by ``vw --dsjson
--ccb_explore_adf`` and ``vowpal_wabbit_next.DSJsonFormatParser``::

    {"EventId": "...", "Timestamp": "...", "Version": "1", "VWState": {"m": "3"},
     "c": {"Member": {...}, "_multi": [{"Row": {...}}, ...],
           "_slots": [{"_id": "1", "_inc": [0, 1, 3], "Slot": {"position": "1"}}, ...]},
     "_outcomes": [{"_id": "1", "_label_cost": -1.0, "_a": [3, 0, 1], "_p": [0.9, 0.05, 0.05],
                    "_o": [{"v": 1.0, "t": "..."}]}, ...],
     "_banditkit": {"rowIds": [...], "slotIds": [...], "pageReward": 0.0, ...}}

``c`` must precede ``_outcomes``: VW's parser attaches outcomes to the slots
it has already read.

``_a`` are 0-based indices into ``_multi`` (VW's CCB convention), chosen first;
``_p`` their probabilities in that slot; ``_inc`` the rows the rules allowed.

The package mirrors the single-slot decision path: :mod:`~banditkit.rows.types`
(rows, slots, rules, the decided page), :mod:`~banditkit.rows.rules` (what the
rules allow in a slot), :mod:`~banditkit.rows.decide` (filling a page),
:mod:`~banditkit.rows.engine` (:class:`RowEngine` and the decision record),
:mod:`~banditkit.rows.join` (the page join), :mod:`~banditkit.rows.store` and
:mod:`~banditkit.rows.learner` (the page learner interface; Vowpal Wabbit's is
:class:`banditkit.vw.VWPageLearner`).
"""

from banditkit.rows.decide import DecidedPage, decide_page
from banditkit.rows.engine import RowEngine, ccb_args
from banditkit.rows.join import joined_page_line
from banditkit.rows.rules import page_violations
from banditkit.rows.types import (
    PageDecision,
    PageRules,
    Row,
    Slot,
    SlotDecision,
    default_slots,
)

__all__ = [
    "DecidedPage",
    "PageDecision",
    "PageRules",
    "Row",
    "RowEngine",
    "Slot",
    "SlotDecision",
    "ccb_args",
    "decide_page",
    "default_slots",
    "joined_page_line",
    "page_violations",
]
