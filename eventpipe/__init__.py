"""eventpipe: the Event Service of the marketing-event platform as a streaming pipeline."""
