"""Execution: events, the coordinator (single writer), the units of work and the executors."""
