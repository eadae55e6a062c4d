"""HEARTBEAT.md: the person's standing instructions for the heartbeat, read fresh for every run.

Exception tree::

    InstructionsError        the file cannot be read or written (a directory at the path,
    │                        permission denied, invalid UTF-8, no such workspace directory)
    ├── InstructionsTooLarge content over MAX_INSTRUCTIONS_BYTES (the file is left untouched)
    ├── InstructionsConflict the file changed since the editor loaded it (left untouched)
    └── InstructionsInvalid  content that cannot be stored as UTF-8 text

A missing file is not an error: it reads as empty (``missing=True``), and an *effectively empty*
file (only blank lines, headings, HTML comments, empty list items, rules) means the run is
skipped without an LLM call, so a fresh workspace costs nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_BYTES",
    "MAX_INSTRUCTIONS_BYTES",
    "Instructions",
    "InstructionsConflict",
    "InstructionsError",
    "InstructionsInvalid",
    "InstructionsTooLarge",
    "Section",
    "is_effectively_empty",
    "load_instructions",
    "parse_sections",
    "write_instructions",
]

logger = logging.getLogger(__name__)

MAX_INSTRUCTIONS_BYTES = 64 * 1024  # a write cap; the prompt builder caps what it sends anyway
MAX_BYTES = MAX_INSTRUCTIONS_BYTES  # the short name the HTTP route uses
# Reading is capped higher so a hand-edited file a little over the write cap still shows up in
# the editor to be trimmed, while a runaway file cannot be pulled into memory every run.
_MAX_READ_BYTES = 1024 * 1024

_COMMENT_RE = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)  # unclosed: runs to the end (CommonMark)
_HEADING_RE = re.compile(r"#{1,6}(?:\s.*)?")
_SECTION_RE = re.compile(r"##(?!#)\s*(.*?)\s*#*\s*")
_EMPTY_ITEM_RE = re.compile(r"(?:[-*+]|\d+[.)])(?:\s+\[[ xX]?\])?")
_RULE_RE = re.compile(r"([-*_])(?:\s*\1){2,}")
_ITEM_RE = re.compile(r"(\s*)(?:[-*+]|\d+[.)])\s+(.*)")
_FENCE_RE = re.compile(r"\s{0,3}(```|~~~)")


class InstructionsError(Exception):
    """Raised when HEARTBEAT.md exists but cannot be read, or cannot be written."""


class InstructionsTooLarge(InstructionsError):
    """Raised by write_instructions when the content is over MAX_INSTRUCTIONS_BYTES as UTF-8."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"HEARTBEAT.md content is {size} bytes; the limit is {MAX_INSTRUCTIONS_BYTES} bytes "
            "(64 KiB). The file was not changed."
        )
        self.size = size


class InstructionsConflict(InstructionsError):
    """Raised by write_instructions when ``expected_sha256`` does not match the file on disk:
    someone saved a newer version since the editor loaded it."""

    def __init__(self, expected: str, current: str) -> None:
        super().__init__(
            "HEARTBEAT.md changed since it was loaded (expected sha256 "
            f"{expected[:12]}..., found {current[:12]}...); reload it and apply your edit again. "
            "The file was not changed."
        )
        self.expected = expected
        self.current = current


class InstructionsInvalid(InstructionsError):
    """Raised by write_instructions when the content cannot be encoded as UTF-8 (for example a
    lone surrogate from a broken JSON escape)."""


@dataclass(frozen=True)
class Section:
    """One ``##`` section: its title, its list items (marker removed, ``[x]``/``[ ]`` kept
    verbatim) and its body text without comments."""

    title: str
    items: list[str]
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "items": list(self.items), "text": self.text}


@dataclass(frozen=True)
class Instructions:
    """HEARTBEAT.md as read at one moment."""

    content: str
    path: str
    last_modified: float | None  # Unix seconds; None when the file is missing
    sha256: str  # of the file's bytes (of b"" when missing), for conflict-safe edits
    effectively_empty: bool
    sections: list[Section] = field(default_factory=list)
    missing: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The API shape of docs/architecture.md §4 (``last_modified`` as ISO-8601 UTC, as every
        API time)."""
        modified = (
            None
            if self.last_modified is None
            else datetime.fromtimestamp(self.last_modified, UTC).isoformat().replace("+00:00", "Z")
        )
        return {
            "content": self.content,
            "path": self.path,
            "last_modified": modified,
            "sha256": self.sha256,
            "effectively_empty": self.effectively_empty,
            "sections": [section.as_dict() for section in self.sections],
            "missing": self.missing,
        }


def load_instructions(path: Path | str) -> Instructions:
    """Read HEARTBEAT.md now (never cached: an edit applies to the very next run).

    A missing file gives ``missing=True`` and counts as effectively empty. Raises
    InstructionsError for anything else that stops the read.
    """
    target = Path(path)
    try:
        with target.open("rb") as handle:
            modified = os.fstat(handle.fileno()).st_mtime
            data = handle.read(_MAX_READ_BYTES + 1)
    except FileNotFoundError:
        return Instructions(
            content="",
            path=str(target),
            last_modified=None,
            sha256=hashlib.sha256(b"").hexdigest(),
            effectively_empty=True,
            missing=True,
        )
    except IsADirectoryError as exc:
        raise InstructionsError(f"{target} is a directory, not a HEARTBEAT.md file") from exc
    except PermissionError as exc:
        raise InstructionsError(f"no permission to read {target}") from exc
    except OSError as exc:
        raise InstructionsError(f"cannot read {target}: {exc.strerror or exc}") from exc
    if len(data) > _MAX_READ_BYTES:
        raise InstructionsError(
            f"{target} is over {_MAX_READ_BYTES} bytes; trim it below {MAX_INSTRUCTIONS_BYTES}"
        )
    try:
        content = data.decode("utf-8-sig")  # an editor's BOM is not part of the text
    except UnicodeDecodeError as exc:
        raise InstructionsError(
            f"{target} is not valid UTF-8 (byte {exc.start}); save it as UTF-8 text"
        ) from exc
    return Instructions(
        content=content,
        path=str(target),
        last_modified=modified,
        sha256=hashlib.sha256(data).hexdigest(),
        effectively_empty=is_effectively_empty(content),
        sections=parse_sections(content),
    )


def write_instructions(
    path: Path | str, content: str, *, expected_sha256: str | None = None
) -> Instructions:
    """Replace HEARTBEAT.md atomically and return it as re-read from disk.

    The new text goes to a temporary file in the same directory, is fsynced, then renamed over
    the old one, so a reader (or a crash) sees the old file or the new one, never half of
    each. ``expected_sha256``, when given, must match the file's current hash (the hash of b""
    when it is missing), or InstructionsConflict is raised. Raises InstructionsTooLarge over
    64 KiB and InstructionsInvalid for text that is not encodable; the file is untouched in
    every error case.
    """
    try:
        data = content.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InstructionsInvalid(
            f"content is not valid Unicode text (character {exc.start}); the file was not changed"
        ) from exc
    if len(data) > MAX_INSTRUCTIONS_BYTES:
        raise InstructionsTooLarge(len(data))
    target = Path(path)
    if target.is_symlink():
        # Keep the link (people keep HEARTBEAT.md in a dotfiles repo) and replace what it names.
        target = target.resolve()
    directory = target.parent
    if not directory.is_dir():
        raise InstructionsError(f"the directory {directory} does not exist")
    with _directory_lock(directory):
        if expected_sha256 is not None:
            current = load_instructions(target).sha256
            if expected_sha256.strip().lower() != current:
                raise InstructionsConflict(expected_sha256, current)
        _replace_atomically(target, data)
        return load_instructions(path)


def is_effectively_empty(content: str) -> bool:
    """True when the text holds no instruction: only blank lines, headings, HTML comments
    (multi-line too), list items with nothing after the marker or checkbox, and rules."""
    for raw in _COMMENT_RE.sub("", content).splitlines():
        line = raw.strip()
        if not line or _HEADING_RE.fullmatch(line):
            continue
        if _EMPTY_ITEM_RE.fullmatch(line) or _RULE_RE.fullmatch(line):
            continue
        return False
    return True


def parse_sections(content: str) -> list[Section]:
    """Split the text at ``##`` headings (``###`` stays inside its section).

    Text before the first ``##`` becomes a section with an empty title when it says anything
    beyond its ``#`` title. Lines inside code fences never start a section.
    """
    sections: list[Section] = []
    title: str | None = None
    body: list[str] = []
    in_fence = False
    for line in _COMMENT_RE.sub("", content).splitlines():
        if _FENCE_RE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _SECTION_RE.fullmatch(line.strip())
        if heading is None:
            body.append(line)
            continue
        _close_section(sections, title, body)
        title, body = heading.group(1), []
    _close_section(sections, title, body)
    return sections


def _close_section(sections: list[Section], title: str | None, body: list[str]) -> None:
    text = "\n".join(body).strip("\n")
    if title is None and is_effectively_empty(text):
        return  # a preamble that is only the "# HEARTBEAT.md" title says nothing
    sections.append(Section(title=title or "", items=_items(body), text=text))


def _items(body: list[str]) -> list[str]:
    items: list[str] = []
    in_fence = False
    for line in body:
        if _FENCE_RE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else _ITEM_RE.fullmatch(line)
        if match is not None:
            if match.group(2).strip():
                items.append(match.group(2).rstrip())
        elif items and line.startswith((" ", "\t")) and line.strip() and not in_fence:
            # An indented line continues the item above it (a wrapped long item).
            items[-1] = f"{items[-1]} {line.strip()}"
    return items


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """Serialise writers (threads and uvicorn worker processes alike) on the directory itself,
    so the expected-hash check and the rename happen as one step and no lock file is left in
    the workspace."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError as exc:
        raise InstructionsError(f"cannot open {directory}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _replace_atomically(target: Path, data: bytes) -> None:
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    except OSError as exc:
        raise InstructionsError(f"cannot write {target}: {exc.strerror or exc}") from exc
    try:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise InstructionsError(f"cannot write in {target.parent}: {exc.strerror or exc}") from exc
    replaced = False
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)  # mkstemp makes 0600; keep the file as readable as it was
        os.replace(tmp_name, target)
        replaced = True
    except OSError as exc:
        raise InstructionsError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        if not replaced:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry itself reaches the disk. The new file
    # is already in place, so a failure here is worth a warning, not a failed save.
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        logger.warning("Could not fsync %s after writing HEARTBEAT.md: %s", directory, exc)
