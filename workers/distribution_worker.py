"""The distribution worker: distribution-job-topic in, one result per channel out.

Deliveries go through the configured channel adapter (a log table by default, or a
Distribution Service over HTTP with a timeout, retries and a breaker per channel); a channel
that fails is reported as FAILED beside the others, never as a failure of the whole request.
"""

from __future__ import annotations

from typing import Any

from eventpipe.settings import Settings
from streams.topics import DISTRIBUTION_JOB, PUBLISH
from workers.channels import ChannelAdapter, Delivery, adapter_for, distribute
from workers.runner import JobWorker, Reporter, report_id

__all__ = ["DistributionWorker"]


class DistributionWorker(JobWorker):
    name = "distribution-worker"
    jobs = DISTRIBUTION_JOB
    reports = PUBLISH
    expires = False  # a published event is delivered however late the worker comes

    def __init__(self, settings: Settings, adapter: ChannelAdapter | None = None) -> None:
        super().__init__(settings)
        self.adapter = adapter or adapter_for(settings)

    async def close(self) -> None:
        await self.adapter.close()

    async def handle(self, job: dict[str, Any], reporter: Reporter) -> None:
        delivery = Delivery.from_request(job)
        results = await distribute(self.adapter, delivery)
        await reporter.send("DistributionCompleted", {"results": results},
                            report_id(delivery.eventId, "distribution",
                                      delivery.requestedAt.isoformat()))
