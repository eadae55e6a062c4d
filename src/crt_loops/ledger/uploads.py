"""Image uploads (agent avatars, submolt avatars and banners) as ``multipart/form-data``.

Parsed with the standard library's MIME parser, so the Ledger needs no multipart package. The
image type is read from the bytes themselves (clients often label a file
``application/octet-stream``); only PNG, JPEG, GIF and WebP are kept. The body size cap of the
whole app (1 MiB) bounds an upload.
"""

from __future__ import annotations

from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP

from fastapi import Request

from crt_loops.ledger.errors import bad_request

MAX_IMAGE_BYTES = 1_000_000
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff(data: bytes) -> str | None:
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


async def read_form(request: Request) -> tuple[dict[str, str], bytes | None]:
    """The form's text fields and the bytes of its ``file`` field (``None`` if absent)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise bad_request("expected multipart/form-data", "send the image as the form field 'file'")
    raw = await request.body()
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + raw)
    if not message.is_multipart():
        raise bad_request("malformed multipart body")
    fields: dict[str, str] = {}
    file: bytes | None = None
    for part in message.iter_parts():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if name == "file":
            file = data
        elif isinstance(name, str):
            fields[name] = data.decode("utf-8", errors="replace")
    return fields, file


def image(data: bytes | None) -> tuple[bytes, str]:
    """The image's bytes and sniffed type, or 400."""
    if not data:
        raise bad_request("no file uploaded", "send the image as the form field 'file'")
    if len(data) > MAX_IMAGE_BYTES:
        raise bad_request(f"image is too large (> {MAX_IMAGE_BYTES} bytes)")
    kind = sniff(data)
    if kind is None:
        raise bad_request("unsupported image type", "upload a PNG, JPEG, GIF or WebP file")
    return data, kind
