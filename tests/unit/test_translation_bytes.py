"""A relay that publishes an event again (after a crash, a lost tail) compares its bytes with
what the stream holds under the event's id; different bytes are treated as someone else's
message. So a translation must give the same bytes in every process, whatever the process's
string hashing (``PYTHONHASHSEED``) makes of a set's order."""

from __future__ import annotations

import os
import subprocess
import sys

SNIPPET = """
from services.coordination.bus import _attended
from shared.events import ParticipantRef, ParticipantRole
roles = [ParticipantRole.FAMILY, ParticipantRole.CHILD, ParticipantRole.NETWORK,
         ParticipantRole.PROFESSIONAL, ParticipantRole.CENTRAL_PERSON, ParticipantRole.EXPERT]
participants = [ParticipantRef(participant_id=f"p{i}", role=roles[i % len(roles)])
                for i in range(12)]
present = {"information": [f"p{i}" for i in range(12)], "family_time": ["p1", "p2"]}
print(list(_attended(present, participants, {})))
"""


def test_the_attended_counts_come_out_in_the_same_order_in_every_process() -> None:
    orders = set()
    for seed in ("1", "2", "3", "4", "5", "6"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", SNIPPET], env=env, capture_output=True, text=True, check=True
        )
        orders.add(done.stdout)
    assert len(orders) == 1, orders
