"""Collaborator workers (SPEC 1): they consume the job topics and answer on the event topics."""
