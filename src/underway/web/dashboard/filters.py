"""What a list page was asked to show, read from its query string: the jobs page's and the
dead letters' filters, forgiving of hand-edited URLs (an unknown status is no filter)."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import Request

from ...model import Status, View
from ..texts import checked

E = TypeVar("E", Status, View)

#: jobs on one page
PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class JobQuery:
    """The filters of the jobs page; every field narrows the list."""

    status: Status | None = None
    view: View | None = None
    task: str | None = None
    queue: str | None = None
    tenant: str | None = None
    q: str | None = None  # an id, or a unique key
    cursor: str | None = None

    @classmethod
    def of(cls, request: Request) -> JobQuery:
        get = request.query_params.get

        def text(name: str) -> str | None:
            value = (get(name) or "").strip()
            return checked(name, value) or None

        return cls(
            status=_member(Status, text("status")),
            view=_member(View, text("view")),
            task=text("task"),
            queue=text("queue"),
            tenant=text("tenant"),
            q=text("q"),
            cursor=_cursor(text("cursor")),
        )

    @property
    def searched_id(self) -> uuid.UUID | None:
        """The job id searched for, when the search text is one."""
        try:
            return None if self.q is None else uuid.UUID(self.q)
        except ValueError:
            return None

    def link(self, **changes: Any) -> str:
        """This query string with `changes` (None drops a field), for links and paging."""
        fields = {**asdict(self), **changes}
        return "?" + urlencode({k: str(v) for k, v in fields.items() if v is not None})

    @property
    def filtered(self) -> bool:
        return any(v is not None for k, v in asdict(self).items() if k != "cursor")


def _member(kind: type[E], value: str | None) -> E | None:
    try:
        return None if value is None else kind(value)
    except ValueError:
        return None


def _cursor(value: str | None) -> str | None:
    try:
        return None if value is None else str(uuid.UUID(value))
    except ValueError:
        return None
