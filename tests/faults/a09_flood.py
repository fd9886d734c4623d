"""A09's flooding tenant, in a process of its own: POSTs one job per request to the HTTP API
at `rate` requests per second for `seconds`, over `lanes` keep-alive connections, never
backing off (a flood does not read Retry-After), each job with an id chosen here. Prints one
JSON object: the ids the server took (201) and refused (429), the ids whose answer never came
or was something else, and how many 429s lacked a Retry-After.

The requests are written as bytes and the answers read with the least parsing that works: an
HTTP client library costs about 3 ms of CPU per request in Python, so one would flood the
machine's cores rather than the server.

    python a09_flood.py URL KEY RATE SECONDS LANES TASK_ARGS_JSON
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from typing import Any
from urllib.parse import urlsplit


class Flood:
    def __init__(self, url: str, key: str, rate: float, seconds: float, args: dict[str, Any]):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.rate, self.total = rate, int(rate * seconds)
        self.head = (
            f"POST /api/v1/jobs HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        )
        self.args = json.dumps(args)
        self.taken: list[str] = []
        self.refused: list[str] = []
        self.unknown: list[str] = []
        self.bare_429 = 0
        self.others: Counter[str] = Counter()
        self.next_index = 0
        self.start = 0.0

    def request(self, job: str) -> bytes:
        body = f'{{"task": "faults.probe", "args": {self.args}, "id": "{job}"}}'.encode()
        return f"{self.head}Content-Length: {len(body)}\r\n\r\n".encode() + body

    async def lane(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            while self.next_index < self.total:
                index = self.next_index
                self.next_index += 1
                if (wait := self.start + index / self.rate - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                job = str(uuid.uuid4())
                try:
                    writer.write(self.request(job))
                    status, headers = await self.answer(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    self.unknown.append(job)
                    self.others[type(exc).__name__] += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                    continue
                if status == 201:
                    self.taken.append(job)
                elif status == 429:
                    self.refused.append(job)
                    self.bare_429 += "retry-after" not in headers
                else:
                    self.unknown.append(job)
                    self.others[str(status)] += 1
        finally:
            writer.close()

    @staticmethod
    async def answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        await reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers

    async def run(self, lanes: int) -> dict[str, Any]:
        self.start = time.monotonic()
        await asyncio.gather(*(self.lane() for _ in range(lanes)))
        return {
            "taken": self.taken, "refused": self.refused, "unknown": self.unknown,
            "bare_429": self.bare_429, "others": dict(self.others),
            "seconds": time.monotonic() - self.start,
        }  # fmt: skip


def main() -> None:
    url, key, rate, seconds, lanes, args = sys.argv[1:7]
    flood = Flood(url, key, float(rate), float(seconds), json.loads(args))
    json.dump(asyncio.run(flood.run(int(lanes))), sys.stdout)


if __name__ == "__main__":
    main()
