"""`eventpipe demo`: the whole flow (purpose, recommendations, images, publish) through the
API, as a shop owner's app would drive it, showing each step and each job's progress as it happens.

It uses nothing but HTTP: it is also a check that a running system (`make run`) works end to
end. Every step that fails stops the demo with the API's error code and message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

__all__ = ["Demo", "DemoFailed"]

STORE = {"objective": "신규 고객 유치", "storeName": "맛있는집", "industry": "음식점",
         "address": "서울시 강남구"}
STYLES = ["SIMPLE", "TRENDY"]
PLATFORMS = ["INSTAGRAM", "GENIE_TV"]
CHANNELS = ["URIDONGNE_TV", "INSTAGRAM", "KAKAO_CHANNEL"]
FINISHED = ("COMPLETED", "FAILED")


class DemoFailed(Exception):
    """A step did not do what it should; the message says which and why."""


@dataclass
class Demo:
    client: httpx.Client  # base_url and the Authorization header set
    console: Console
    job_seconds: float = 120.0  # how long a job may take before the demo gives up
    poll_seconds: float = 0.5

    def run(self) -> dict[str, Any]:
        """Purpose -> recommendations -> images -> dates and channels -> publish -> delivered."""
        draft = self._step("1. 목적 선택 (draft)", "POST", "/api/events/purposes", STORE)
        # A 201 is the draft (eventDraftId); after a 202 `_decided` reads the event (eventId).
        event_id = draft.get("eventDraftId") or draft["eventId"]
        self.console.print(f"   draft [bold]{event_id}[/bold]")

        event = f"/api/events/{event_id}"
        job = self._step("2. AI 추천 요청", "POST", f"{event}/ai-recommendations", {})
        done = self._follow(job["jobId"], "AI recommendations")
        self._recommendations(done["recommendations"])
        chosen = done["recommendations"][1]["recommendationId"]
        self._step("3. 추천안 선택", "PUT", f"{event}/recommendations",
                   {"recommendationId": chosen})

        job = self._step("4. 이미지 생성 요청", "POST", f"{event}/content-generation",
                         {"styles": STYLES, "platforms": PLATFORMS})
        done = self._follow(job["jobId"], "images")
        for image in done["images"]:  # the link without its token (a credential)
            link = image["imageUrl"].split("?", 1)[0]
            self.console.print(f"   {image['style']:7} {image['platform']:14} {link}")
        self._step("5. 이미지 선택", "PUT",
                   f"{event}/images/{done['images'][0]['imageId']}/select")

        self._step("6. 기간과 채널", "PATCH", event,
                   {"startDate": "2026-12-01", "endDate": "2026-12-31", "channels": CHANNELS})
        published = self._step("7. 배포", "POST", f"{event}/publish", {})
        self.console.print(f"   status [bold]{published['status']}[/bold]")
        delivered = self._delivered(event_id)
        self.console.print("[bold green]done[/bold green]: the event is PUBLISHED and delivered.")
        return delivered

    # ---------------------------------------------------------------- steps

    def _step(self, title: str, method: str, path: str,
              body: dict[str, Any] | None = None) -> dict[str, Any]:
        self.console.print(f"[bold cyan]{title}[/bold cyan]  {method} {path}")
        response = self.client.request(method, path, json=body)
        if response.status_code >= 400:
            raise DemoFailed(f"{title}: {response.status_code} {response.text}")
        answer = response.json()
        if response.status_code == 202 and "jobId" not in answer:
            answer = self._decided(answer["commandId"], title)
        return answer

    def _decided(self, command_id: str, title: str) -> dict[str, Any]:
        """The pipeline was slower than the API's wait: poll the command, then the event."""
        deadline = time.monotonic() + self.job_seconds
        while time.monotonic() < deadline:
            response = self.client.get(f"/api/events/commands/{command_id}")
            if response.status_code == 200:
                outcome = response.json()
                if outcome["status"] != "ACCEPTED":
                    raise DemoFailed(f"{title}: {outcome['code']} {outcome['message']}")
                return self.client.get(f"/api/events/{outcome['eventId']}").json()
            time.sleep(self.poll_seconds)
        raise DemoFailed(f"{title}: no outcome for command {command_id}")

    def _follow(self, job_id: str, what: str) -> dict[str, Any]:
        """Poll the job as the app does, with a progress bar."""
        columns = (TextColumn("   {task.description}"), BarColumn(),
                   TextColumn("{task.percentage:>3.0f}%  {task.fields[status]}"))
        with Progress(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task(what, total=100, status="PENDING")
            deadline = time.monotonic() + self.job_seconds
            while time.monotonic() < deadline:
                status = self.client.get(f"/api/events/jobs/{job_id}/status").json()
                bar.update(task, completed=status.get("progress", 0),
                           status=status.get("status", "?"))
                if status.get("status") == "COMPLETED":
                    return status
                if status.get("status") == "FAILED":
                    raise DemoFailed(f"{what} job failed: {status.get('error')}")
                time.sleep(self.poll_seconds)
        raise DemoFailed(f"{what} job {job_id} did not finish in {self.job_seconds:.0f} s")

    def _delivered(self, event_id: str) -> dict[str, Any]:
        """Wait until the distribution worker has reported every channel."""
        deadline = time.monotonic() + self.job_seconds
        while time.monotonic() < deadline:
            event = self.client.get(f"/api/events/{event_id}").json()
            results = event.get("distributionResults") or []
            if results and all(r["status"] != "PENDING" for r in results):
                table = Table("channel", "status", "message", title="8. 채널별 배포 결과")
                for r in results:
                    table.add_row(r["channel"], r["status"], r.get("message") or "")
                self.console.print(table)
                return event
            time.sleep(self.poll_seconds)
        raise DemoFailed(f"distribution of {event_id} not reported in {self.job_seconds:.0f} s")

    def _recommendations(self, items: list[dict[str, Any]]) -> None:
        table = Table("title", "prize", "method", "cost", "roi", title="AI 추천안")
        for r in items:
            table.add_row(r["title"], r["prize"], r["method"], r["cost"], r["roi"])
        self.console.print(table)
