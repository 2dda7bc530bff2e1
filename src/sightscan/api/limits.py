"""A request body size limit in front of every route, before any parsing.

`BodyLimitMiddleware` refuses a declared Content-Length over the limit before a byte is
read, and counts the bytes of a streamed body as the app pulls them, stopping at the
chunk that crosses the limit. Multipart bodies (photo uploads) may be as large as a photo
plus form overhead; every other body (JSON) has its own, much smaller limit. FastAPI's own
`max_body_size` is fixed per route at import time and answers in plain text; this one takes
the limits from the settings and answers in the API's {"detail": ...} shape.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sightscan.api.errors import error_response
from sightscan.errors import PayloadTooLargeError

# Room for the multipart framing and the small text fields (labels, sight) beside the file.
FORM_OVERHEAD_BYTES = 256 * 1024


class BodyLimitMiddleware:
    """413 {"detail"} for bodies over the limit of their content type, on every route."""

    def __init__(self, app: ASGIApp, *, max_file_bytes: int, max_other_bytes: int) -> None:
        self.app = app
        self.max_file_bytes = max_file_bytes
        self.max_other_bytes = max_other_bytes

    def limit_for(self, content_type: str) -> tuple[int, str]:
        """The byte limit of a body of `content_type`, and the message when it is exceeded."""
        if content_type.lower().startswith("multipart/form-data"):
            limit = self.max_file_bytes + FORM_OVERHEAD_BYTES
            return limit, f"expected an upload of at most {self.max_file_bytes} bytes"
        return (
            self.max_other_bytes,
            f"expected a request body of at most {self.max_other_bytes} bytes",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit, message = self.limit_for(headers.get("content-type", ""))
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            status = 413 if declared.isdigit() else 400
            detail = message if status == 413 else "expected a numeric Content-Length"
            await error_response(status, detail, {"Connection": "close"})(scope, receive, send)
            return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise PayloadTooLargeError(message)
            return incoming

        async def guarded_send(outgoing: Message) -> None:
            # Whatever the app made of the cut-off body (FastAPI answers 400 for a body it
            # could not read), the client learns the real reason: 413.
            nonlocal started
            if exceeded:
                if outgoing["type"] == "http.response.start" and not started:
                    started = True
                    await error_response(413, message, {"Connection": "close"})(
                        scope, receive, send
                    )
                return
            if outgoing["type"] == "http.response.start":
                started = True
            await send(outgoing)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except PayloadTooLargeError:
            if started:
                raise
            await error_response(413, message, {"Connection": "close"})(scope, receive, send)
