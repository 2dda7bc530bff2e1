"""Multipart uploads with the size limit enforced while reading, not after.

The request body is counted as it arrives: a declared Content-Length over the limit is
refused before a byte is read, and a body that grows past it is refused at that chunk,
so an oversized upload never fills memory or disk.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException, Request
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.types import Message

from sightscan.errors import InvalidInputError

# Room for the multipart framing and the small text fields (labels, sight) beside the file.
FORM_OVERHEAD_BYTES = 256 * 1024
MAX_TEXT_FIELD_BYTES = 64 * 1024


class _TooLarge(Exception):
    pass


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"expected an upload of at most {limit} bytes")


async def read_multipart_upload(request: Request, *, max_file_bytes: int) -> FormData:
    """Parse a multipart/form-data body of at most one file of `max_file_bytes` bytes.

    413 when the body or the file is larger, 400 when it is not multipart form data.
    The caller closes the returned form.
    """
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidInputError(f"expected multipart/form-data, got {content_type[:60] or 'none'}")
    max_body = max_file_bytes + FORM_OVERHEAD_BYTES
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidInputError("expected a numeric Content-Length")
        if int(declared) > max_body:
            raise _too_large(max_file_bytes)

    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_body:
                raise _TooLarge
        return message

    limited = Request(request.scope, receive=limited_receive)
    try:
        form = await limited.form(max_files=1, max_fields=10, max_part_size=MAX_TEXT_FIELD_BYTES)
    except _TooLarge:
        raise _too_large(max_file_bytes) from None
    except MultiPartException as exc:
        raise InvalidInputError(f"expected valid multipart form data: {exc.message}") from None
    except StarletteHTTPException as exc:  # Starlette reports multipart errors as 400 inside an app
        raise InvalidInputError(f"expected valid multipart form data: {exc.detail}") from None
    for _name, value in form.multi_items():
        if isinstance(value, UploadFile) and (value.size or 0) > max_file_bytes:
            await form.close()
            raise _too_large(max_file_bytes)
    return form


@dataclass(frozen=True, slots=True)
class PhotoUpload:
    """The photo of a multipart upload (field `image`) and its text fields."""

    data: bytes
    filename: str | None
    fields: dict[str, str]


async def read_photo_upload(request: Request, *, max_file_bytes: int) -> PhotoUpload:
    """Read the file field `image` and the text fields of a photo upload."""
    form = await read_multipart_upload(request, max_file_bytes=max_file_bytes)
    try:
        image = form.get("image")
        if not isinstance(image, UploadFile):
            raise InvalidInputError("expected the photo in the multipart file field `image`")
        data = await image.read(max_file_bytes + 1)
        fields: dict[str, str] = {}
        for name, value in form.multi_items():
            if name == "image":
                continue
            if isinstance(value, UploadFile):
                raise InvalidInputError(f"expected `{name}` as a text field, got a file")
            fields[name] = value
        return PhotoUpload(data, image.filename, fields)
    finally:
        await form.close()
