"""Follow-up: durable timers after a plan is distributed, and the follow-up contacts."""
