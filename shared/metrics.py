"""Prometheus metrics every service exposes on ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RELAY_PUBLISHED = Counter(
    "kring_relay_published_total", "Integration events the relay published", ["origin"]
)
RELAY_POSITION = Gauge(
    "kring_relay_position", "Last notification id relayed to the stream", ["origin"]
)
RELAY_FAILURES = Counter("kring_relay_failures_total", "Relay rounds that failed", ["origin"])
RELAY_CONFLICTS = Counter(
    "kring_relay_conflicts_total",
    "Events whose id the stream held for another message (a duplicate not taken on trust)",
    ["origin"],
)
RELAY_FOREIGN = Counter(
    "kring_relay_unreadable_positions_total",
    "Messages on the origin's subjects without a readable Kring-Position, passed over on resume",
    ["origin"],
)
CONSUMED = Counter(
    "kring_consumed_total", "Messages a consumer handled, by outcome", ["consumer", "outcome"]
)
DEAD_LETTERS = Counter(
    "kring_dead_letters_total", "Messages parked on the dead-letter stream", ["consumer", "reason"]
)
BUS_CONNECTED = Gauge("kring_bus_connected", "1 while connected to NATS")
LEASE_HELD = Gauge(
    "kring_lease_held",
    "1 in the replica that holds its service's lease (runs the relay, consumers and timers)",
)
LEASE_ACQUIRED = Counter("kring_lease_acquired_total", "Times this replica took the lease")
LEASE_LOST = Counter(
    "kring_lease_lost_total", "Times this replica lost the lease before giving it up"
)
LEASE_FENCED = Counter(
    "kring_lease_fenced_total", "Store writes refused because their term had lost the lease"
)
