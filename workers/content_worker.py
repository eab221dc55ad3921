"""The content worker: content-job-topic in, one image per (style, platform) out.

Each image is rendered with Pillow (in a thread: rendering is CPU work), stored in the blob
store under a name derived from the job, and reported with its URL (a signed or SAS URL that
lives 7 days). An upload that fails after its retries fails the job, with the reason.
"""

from __future__ import annotations

import asyncio
from typing import Any

from eventpipe.settings import Settings
from streams.topics import CONTENT_JOB, IMAGE
from workers.blobstore import BlobStore, blob_store_for
from workers.images import render
from workers.runner import JobWorker, Reporter, report_id

__all__ = ["ContentWorker"]


class ContentWorker(JobWorker):
    name = "content-worker"
    jobs = CONTENT_JOB
    reports = IMAGE

    def __init__(self, settings: Settings, store: BlobStore | None = None) -> None:
        super().__init__(settings)
        self._store = store

    async def open(self) -> None:
        self.store = self._store or blob_store_for(self.settings)

    async def close(self) -> None:
        await self.store.close()

    async def handle(self, job: dict[str, Any], reporter: Reporter) -> None:
        job_id, event_id = str(job["jobId"]), str(job["eventId"])
        title = job.get("eventName") or job["storeName"]
        pairs = [(style, platform) for style in job["styles"] for platform in job["platforms"]]
        images = []
        try:
            for done, (style, platform) in enumerate(pairs, start=1):
                image_id = report_id(job_id, style, platform)  # the same image if redone
                png = await asyncio.to_thread(render, title, job.get("description"),
                                              job["storeName"], style, platform,
                                              self.settings.image_font_path)
                url = await self.store.put(f"{event_id}/{image_id}.png", png, "image/png")
                images.append({"imageId": image_id, "imageUrl": url, "style": style,
                               "platform": platform})
                # 100 is the result's: progress stops short of it.
                await reporter.send("ImageJobProgress",
                                    {"jobId": job_id, "progress": 99 * done // len(pairs)},
                                    report_id(job_id, "progress", done))
                await self.step()
        except Exception as exc:
            await reporter.send("ImageJobFailed",
                                {"jobId": job_id, "error": f"이미지 생성 실패: {exc}"},
                                report_id(job_id, "failed"))
            return
        await reporter.send("ImagesGenerated", {"jobId": job_id, "images": images},
                            report_id(job_id, "result"))
