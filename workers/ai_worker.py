"""The AI recommendation worker: ai-job-topic in, progress and three proposals out.

The proposals come from the configured provider (explicit rules, or an OpenAI-compatible
endpoint that falls back to the rules); this module only paces and reports the job.
"""

from __future__ import annotations

import logging
from typing import Any

from eventpipe.settings import Settings
from streams.topics import AI_JOB, RECOMMENDATION
from workers.ai_provider import RecommendationProvider, provider_for
from workers.runner import JobWorker, Reporter, report_id

__all__ = ["AiWorker"]

log = logging.getLogger(__name__)

# Progress reported before the proposal is asked for: what the app's poller shows first.
PROGRESS_STEPS = (10, 40, 70)


class AiWorker(JobWorker):
    name = "ai-worker"
    jobs = AI_JOB
    reports = RECOMMENDATION

    def __init__(self, settings: Settings, provider: RecommendationProvider | None = None) -> None:
        super().__init__(settings)
        self.provider = provider or provider_for(settings)

    async def close(self) -> None:
        await self.provider.close()

    async def handle(self, job: dict[str, Any], reporter: Reporter) -> None:
        job_id = str(job["jobId"])
        for progress in PROGRESS_STEPS:
            await reporter.send("RecommendationJobProgress",
                                {"jobId": job_id, "progress": progress},
                                report_id(job_id, "progress", progress))
            await self.step()
        try:
            proposal = await self.provider.propose(job)
        except Exception as exc:  # even the rules failed: the owner sees why, and may retry
            await reporter.send("RecommendationJobFailed",
                                {"jobId": job_id, "error": f"AI 분석 실패: {exc}"},
                                report_id(job_id, "failed"))
            return
        log.info("job %s: recommendations by %s%s", job_id, proposal.source,
                 f" (fallback: {proposal.fallback_reason})" if proposal.fallback_reason else "")
        await reporter.send("RecommendationsGenerated", {"jobId": job_id, **proposal},
                            report_id(job_id, "result"))
