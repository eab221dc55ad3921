"""eventpipe: the Event Service of the marketing-event platform as a streaming pipeline."""

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # every process's log lines
