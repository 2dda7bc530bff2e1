"""Multipart uploads: at most one file of at most the configured size, text fields checked.

The body size is enforced while it streams in by `limits.BodyLimitMiddleware`, in front of
every route; here the form is parsed and the file's own size is checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from sightscan.errors import InvalidInputError, PayloadTooLargeError
from sightscan.text import PRINTABLE_PATTERN, check_text

MAX_TEXT_FIELD_BYTES = 64 * 1024
# For the document: text fields refuse control characters other than tab, CR and LF.
PRINTABLE_TEXT: dict[str, Any] = {"pattern": PRINTABLE_PATTERN, "maxLength": 16 * 1024}


def photo_form(text_fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The `openapi_extra` of a route that takes a photo (field `image`) and `text_fields`."""
    image = {
        "type": "string",
        "format": "binary",
        "description": "jpeg, png, gif, bmp, webp or tiff (checked by decoding)",
    }
    schema = {
        "type": "object",
        "required": ["image"],
        "properties": {"image": image, **text_fields},
        "additionalProperties": False,
    }
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    }


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"expected an upload of at most {limit} bytes")


async def read_multipart_upload(request: Request, *, max_file_bytes: int) -> FormData:
    """Parse a multipart/form-data body of at most one file of `max_file_bytes` bytes.

    413 when the file is larger, 400 when it is not multipart form data.
    The caller closes the returned form.
    """
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidInputError(f"expected multipart/form-data, got {content_type[:60] or 'none'}")
    try:
        form = await request.form(max_files=1, max_fields=10, max_part_size=MAX_TEXT_FIELD_BYTES)
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
            fields[name] = check_text(value, f"`{name}`")
        return PhotoUpload(data, image.filename, fields)
    finally:
        await form.close()
