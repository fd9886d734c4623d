"""The seed's TaskManager, for a caller in another process: create an OAuth task and get its
id, then poll its state, all over underway's HTTP API (`underway serve`, or `create_api(app)`
mounted in the caller's own server). Nothing here keeps state: the job is the task."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from .oauth import TASK

FINAL = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class OAuthRequest:
    """What a caller asks the OAuth task to do."""

    email: str
    client_id: str = "outreach"
    proxy: str | None = None


@dataclass(frozen=True, slots=True)
class TaskModel:
    """The seed's task state, read off underway's job JSON."""

    id: uuid.UUID
    is_completed: bool
    is_success: bool
    message: str | None
    #: what the task returned, once it succeeded
    result: Any = None

    @classmethod
    def from_job(cls, job: dict[str, Any]) -> TaskModel:
        """A failed job's message is its error; otherwise the last status message."""
        error = job.get("error")
        message = error["message"] if error else job.get("status_message")
        return cls(
            id=uuid.UUID(job["id"]),
            is_completed=job["status"] in FINAL,
            is_success=job["status"] == "completed",
            message=message,
            result=job.get("result"),
        )


class TaskManager:
    """`create` and `get_task_by_id` over the HTTP API at `api_url`, with an API key."""

    def __init__(self, api_url: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=api_url, headers={"authorization": f"Bearer {key}"}, timeout=10
        )

    def create(
        self, request: OAuthRequest, user_id: int | None = None, callback_url: str | None = None
    ) -> uuid.UUID:
        """Start the OAuth flow; returns the task's id at once. `callback_url` gets a signed
        POST when it ends."""
        args = {
            "email": request.email, "client_id": request.client_id, "proxy": request.proxy,
            "user_id": user_id,
        }  # fmt: skip
        body: dict[str, Any] = {"task": TASK, "args": args}
        if callback_url is not None:
            body["callback_url"] = callback_url
        answer = self.http.post("/api/v1/jobs", json=body)
        answer.raise_for_status()
        return uuid.UUID(answer.json()["id"])

    def get_task_by_id(self, task_id: uuid.UUID) -> TaskModel | None:
        answer = self.http.get(f"/api/v1/jobs/{task_id}")
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return TaskModel.from_job(answer.json())

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> TaskManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
