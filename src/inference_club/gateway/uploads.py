"""Multipart uploads: streamed to temporary files on the way in, rebuilt in chunks on the way out.

An upload is never held whole in memory: file parts go to their own temporary files as they
arrive (under ``<data>/tmp/``), small fields stay in memory, and the body is cut off with 413 at
the size limit. The body for the backend is rebuilt with a fresh boundary and streamed from
those files, as often as failover needs it.
"""

import contextlib
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from inference_club.gateway.asgi import (
    ClientGone,
    Receive,
    Scope,
    header,
    refuse_declared_over,
    too_large,
)
from inference_club.gateway.errors import BadRequest

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

# Enough of a file's start to recognise its format (an ID3 tag may come first).
HEAD_BYTES = 4096
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 64
MAX_FILES = 4
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """One file part, kept on disk; ``head`` is its first bytes, for sniffing its format."""

    name: str
    path: Path
    size: int
    head: bytes


@dataclass(slots=True)
class Upload:
    """A received form: text fields in order (names may repeat) and the files on disk."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[UploadedFile] = field(default_factory=list)

    def value(self, name: str) -> str | None:
        """The first value of field ``name``."""
        return next((value for key, value in self.fields if key == name), None)

    def values(self, name: str) -> list[str]:
        """Every value of field ``name``, in order."""
        return [value for key, value in self.fields if key == name]

    def file(self, *names: str) -> UploadedFile | None:
        """The first file sent under any of ``names``."""
        return next((upload for upload in self.files if upload.name in names), None)


@contextlib.asynccontextmanager
async def receive_upload(
    scope: Scope,
    receive: Receive,
    *,
    limit: int,
    temp_root: Path,
    file_fields: frozenset[str],
) -> AsyncIterator[Upload]:
    """Read a multipart/form-data body; its temporary files are removed when the block ends.

    Parts named in ``file_fields`` are files, whatever their headers say; other parts with a
    file name are read past and dropped; the rest are text fields.
    """
    refuse_declared_over(scope, limit)
    boundary = _boundary(header(scope, b"content-type"))
    directory = _private_directory(temp_root)
    reader = _FormReader(directory, file_fields)
    try:
        parser = MultipartParser(boundary, reader.callbacks())
        received = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            if not chunk:
                continue
            received += len(chunk)
            if received > limit:
                raise too_large(limit)
            try:
                parser.write(chunk)
            except FormParserError:
                raise BadRequest("The multipart/form-data body is malformed.") from None
        if not reader.ended:
            raise BadRequest("The multipart/form-data body ended before its closing boundary.")
        yield reader.upload
    finally:
        reader.close()
        shutil.rmtree(directory, ignore_errors=True)


def sweep_stale_uploads(temp_root: Path, older_than: float = 3600.0) -> int:
    """Remove upload folders a crashed process left behind; returns how many.

    Only folders untouched for ``older_than`` seconds go, so a gateway sharing the data
    directory never loses an upload it is still reading.
    """
    if not temp_root.is_dir():
        return 0
    cutoff = time.time() - older_than
    removed = 0
    for entry in temp_root.glob("upload-*"):
        try:
            if entry.is_dir() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        except OSError:
            continue
    return removed


def _private_directory(temp_root: Path) -> Path:
    """A fresh directory only this process may read (mode 0700), for one request's files."""
    temp_root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="upload-", dir=temp_root))


def _boundary(content_type: str | None) -> bytes:
    media_type, options = parse_options_header(content_type)
    if media_type != b"multipart/form-data":
        got = media_type.decode("latin-1")[:100] or "none"
        msg = f"The request body must be multipart/form-data (the Content-Type was {got!r})."
        raise BadRequest(msg)
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 200:
        msg = "The multipart/form-data Content-Type has no usable boundary."
        raise BadRequest(msg)
    return boundary


class _FormReader:
    """The parser's callbacks: part headers, then data into a field buffer or a file."""

    def __init__(self, directory: Path, file_fields: frozenset[str]) -> None:
        self.upload = Upload()
        self.ended = False
        self._directory = directory
        self._file_fields = file_fields
        self._headers: dict[bytes, bytes] = {}
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._name = ""
        self._value = bytearray()
        self._skipping = False
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._size = 0
        self._head = bytearray()

    def callbacks(self) -> "MultipartCallbacks":
        """The callback table python-multipart expects."""
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._name = ""
        self._value.clear()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition"))
        name = options.get(b"name")
        if disposition != b"form-data" or name is None:
            msg = "A multipart/form-data part has no Content-Disposition name."
            raise BadRequest(msg)
        self._name = name.decode("utf-8", errors="replace")
        self._skipping = False
        if self._name in self._file_fields:
            if len(self.upload.files) >= MAX_FILES:
                raise BadRequest(f"The form has more than {MAX_FILES} files.")
            self._path = self._directory / f"part-{len(self.upload.files)}"
            self._file = self._path.open("xb")
            self._size = 0
            self._head.clear()
        elif b"filename" in options:
            # A file this endpoint does not take: its bytes are counted, not kept.
            self._skipping = True
        elif len(self.upload.fields) >= MAX_FIELDS:
            raise BadRequest(f"The form has more than {MAX_FIELDS} fields.")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            piece = data[start:end]
            self._file.write(piece)
            self._size += len(piece)
            if len(self._head) < HEAD_BYTES:
                self._head += piece[: HEAD_BYTES - len(self._head)]
            return
        if self._skipping:
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            msg = f"The form field '{self._name[:64]}' is longer than {MAX_FIELD_BYTES} bytes."
            raise BadRequest(msg, param=self._name[:64])

    def _part_end(self) -> None:
        if self._file is not None and self._path is not None:
            self._file.close()
            self._file = None
            self.upload.files.append(
                UploadedFile(self._name, self._path, self._size, bytes(self._head))
            )
            return
        if self._skipping:
            return
        try:
            value = self._value.decode("utf-8")
        except UnicodeDecodeError:
            msg = f"The form field '{self._name[:64]}' is not valid UTF-8 text."
            raise BadRequest(msg, param=self._name[:64]) from None
        self.upload.fields.append((self._name, value))

    def _end(self) -> None:
        self.ended = True

    def close(self) -> None:
        """Close a file left open by a body that stopped midway."""
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass(frozen=True, slots=True)
class FilePart:
    """A file to send in a rebuilt form, with the name and type the backend will see."""

    name: str
    filename: str
    content_type: str
    path: Path
    size: int


class MultipartBody:
    """A multipart/form-data body with a fresh boundary, streamed from disk on each call."""

    def __init__(self, fields: Iterable[tuple[str, str]], files: Sequence[FilePart]) -> None:
        self.boundary = secrets.token_hex(16)
        dash = f"--{self.boundary}\r\n".encode()
        self._fields = b"".join(
            dash + _disposition(name) + b"\r\n\r\n" + value.encode() + b"\r\n"
            for name, value in fields
        )
        self._files = [
            (
                dash
                + _disposition(part.name, part.filename)
                + f"\r\nContent-Type: {part.content_type}\r\n\r\n".encode(),
                part,
            )
            for part in files
        ]
        self._closing = f"--{self.boundary}--\r\n".encode()

    @property
    def content_type(self) -> str:
        """The Content-Type header value, with the boundary."""
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def length(self) -> int:
        """The exact number of bytes :meth:`chunks` yields."""
        files = sum(len(head) + part.size + 2 for head, part in self._files)
        return len(self._fields) + files + len(self._closing)

    def headers(self) -> tuple[tuple[str, str], ...]:
        """Content-Type and Content-Length for the request that carries this body."""
        return (("content-type", self.content_type), ("content-length", str(self.length)))

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The body, in pieces of at most a tunnel frame's size past the small parts."""
        pending = self._fields
        for head, part in self._files:
            pending += head
            with part.path.open("rb") as file:
                while data := file.read(CHUNK_BYTES):
                    if pending:
                        yield pending
                        pending = b""
                    yield data
            pending += b"\r\n"
        yield pending + self._closing


def _disposition(name: str, filename: str | None = None) -> bytes:
    text = f'Content-Disposition: form-data; name="{_quote(name)}"'
    if filename is not None:
        text += f'; filename="{_quote(filename)}"'
    return text.encode()


def _quote(value: str) -> str:
    """Escape a name the way browsers do (WHATWG), so it cannot break out of its quotes."""
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
