"""Text a client sends in a query or a path, refused with 422 when no store could hold it (a NUL
character, a lone surrogate) rather than failing in the driver."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Query, status

#: a client's text: no NUL characters (PostgreSQL refuses them)
PATTERN = r"^[^\x00]*$"

#: an optional text filter in a query string
Text = Annotated[str | None, Query(pattern=PATTERN)]


def checked(name: str, value: str | None) -> str | None:
    """`value` if every store can hold it; 422 naming `name` otherwise."""
    if value is None:
        return None
    if "\x00" in value:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name} holds a NUL character (\\x00)"
        )
    try:
        value.encode()
    except UnicodeEncodeError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name} is not valid Unicode"
        ) from None
    return value
