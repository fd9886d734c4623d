"""uuid7(): RFC 9562 version 7 ids, strictly increasing, with the current time up front."""

from __future__ import annotations

import itertools
import os
import select
import threading
import time
import uuid

import pytest

from underway.ids import uuid7


def test_version_and_variant() -> None:
    for _ in range(100):
        ident = uuid7()
        assert ident.version == 7
        assert ident.variant == uuid.RFC_4122
        assert uuid.UUID(str(ident)) == ident


def test_strictly_increasing_over_ten_thousand_calls() -> None:
    ids = [uuid7() for _ in range(10_000)]
    assert all(a < b for a, b in itertools.pairwise(ids))
    # Stores page by the text form, so it must sort the same way.
    texts = [str(i) for i in ids]
    assert texts == sorted(texts) and len(set(texts)) == len(texts)


def test_time_prefix_is_now_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    ident = uuid7()
    after = time.time_ns() // 1_000_000
    stamp = ident.int >> 80
    # Within one millisecond the counter may push the stamp a little ahead of the clock.
    assert before - 1 <= stamp <= after + 1_000


def test_unique_and_ordered_per_thread_across_threads() -> None:
    results: list[list[uuid.UUID]] = [[] for _ in range(4)]

    def make(index: int) -> None:
        results[index].extend(uuid7() for _ in range(2_500))

    threads = [threading.Thread(target=make, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for part in results for i in part]
    assert len(set(everything)) == len(everything)
    for part in results:
        assert part == sorted(part)


def test_a_forked_process_does_not_repeat_the_parents_ids() -> None:
    # Web servers and worker pools fork after importing the app; a child that continues the
    # parent's random sequence makes the same ids whenever both hit the same millisecond.
    uuid7()  # the parent has made ids before forking
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send 50 ids and leave at once
        try:
            os.close(read_end)
            payload = "\n".join(str(uuid7()) for _ in range(50)).encode()
            os.write(write_end, payload)
        finally:
            os._exit(0)
    os.close(write_end)
    parent_ids = [uuid7() for _ in range(50)]
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([read_end], [], [], 30)
            assert ready, "the forked child sent nothing for 30 s"
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    child_ids = [uuid.UUID(line) for line in b"".join(chunks).decode().split()]
    assert len(child_ids) == 50

    def random_part(ident: uuid.UUID) -> int:
        return ident.int & ((1 << 62) - 1)

    shared = {random_part(i) for i in parent_ids} & {random_part(i) for i in child_ids}
    assert not shared, "parent and child draw the same random bits after fork"


def test_the_random_bits_come_from_the_os_not_a_seeded_generator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A caller may choose a job's id, so nobody must be able to predict the next ones."""
    import underway.ids as ids

    drawn: list[int] = []

    def urandom(n: int) -> bytes:
        drawn.append(n)
        return bytes(range(256)) * (n // 256) + bytes(n % 256)

    monkeypatch.setattr(ids.os, "urandom", urandom)
    ids._forget_pool()
    first = uuid7()
    assert drawn == [ids._BLOCK]
    assert first.int & ((1 << 62) - 1) == int.from_bytes(bytes(range(8))) & ((1 << 62) - 1)
    for _ in range(ids._BLOCK // 8):
        uuid7()
    assert drawn == [ids._BLOCK, ids._BLOCK]  # a new block once the first is used up
    ids._forget_pool()
