"""Homepage rows: which row goes in which slot, rewarded per slot.

Run it with ``python examples/homepage_rows.py``.

The UI backend sends the member's context and the candidate rows; banditkit
fills the slots top to bottom (each slot's row drawn given the rows above,
within the page's rules) and logs the page; the backend then reports a reward
per slot the member played from. See docs/rows.md.
"""

from __future__ import annotations

import numpy as np
from _local import call, joined_lines, local_server

ROWS = [{"id": row_id, "genre": genre, "features": {"Row": {"kind": row_id, "genre": genre}}}
        for row_id, genre in [("continue-watching", "any"), ("trending", "any"),
                              ("comedies", "comedy"), ("dramas", "drama"),
                              ("documentaries", "documentary"), ("kids", "family")]]
# Rules a page must keep: no two rows of the same genre next to each other.
RULES = {"noAdjacentSameGenre": True}

with local_server("client") as server:
    rng = np.random.default_rng(0)
    plays = 0
    for page in range(50):
        answer = call("POST", f"{server.url}/v1/rows/rank", server.keys["client"], {
            "context": {"Member": {"country": "BR", "device": "tv"}},
            "rows": ROWS, "slots": 4, "rules": RULES})
        if page == 0:
            print("page 1:", " | ".join(f"slot {s['id']}: {s['rowId']} (p={s['probability']})"
                                        for s in answer["slots"]))
            print("probability of the whole page:", answer["pageProbability"])
        # This member plays from "comedies" when it is shown, wherever it is.
        rewards = [{"slotId": s["id"], "value": 1.0} for s in answer["slots"]
                   if s["rowId"] == "comedies" and rng.random() < 0.8]
        plays += len(rewards)
        if rewards:
            call("POST", f"{server.url}/v1/rows/events/{answer['eventId']}/reward",
                 server.keys["client"], {"rewards": rewards})
    print(f"50 pages ranked, {plays} slot rewards sent")

    # After the 1 s reward wait the learner joins each page into the row log (CCB dsjson).
    joined = joined_lines(server.data_dir / "rows" / "logs", 50)
    print(f"pages joined into rows/logs: {joined}")
