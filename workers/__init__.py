"""Collaborator workers (AI recommendations, images, distribution): they consume the job
topics and answer on the event topics."""
