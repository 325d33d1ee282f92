"""Kring's shared contracts and plumbing: integration events, bus names, settings, logging,
persistence, the outbox relay and tracked consumers. Services import from here, never from
each other."""
