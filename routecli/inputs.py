"""Reading requests from files: image files, and the JSONL line format `route` and `batch` share.

A line is `{"id", "prompt"}` or OpenAI-style `{"id", "messages": [...]}`, with optional
`system`, `tier`, `model`, `agent`, `tags`, `max_tokens`, `temperature`, `metadata`,
`tools`, and `image`/`images` (paths relative to the JSONL file). Other fields are ignored, so
files made for other tools (e.g. eval data with "category" and "scores") can be routed. A bad line never stops
the others: it comes back as an `InputLine` with `error` set and its line number.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from routecli.domain import Image, Message, Request
from routecli.errors import UsageError

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_LINE_CHARS = 10_000_000  # a line beyond this is refused before JSON parsing
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_ROLES = ("user", "assistant", "tool")


def read_image(path: Path) -> Image:
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise UsageError(f"Image {path} is {size / 2**20:.1f} MB, over 20 MB; resize it first")
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"Cannot read image {path}: {exc.strerror or exc}; check the path") from None
    return image_from_bytes(data, str(path))


def image_from_bytes(data: bytes, source: str) -> Image:
    media = next((m for magic, m in _MAGIC if data.startswith(magic)), None)
    if media is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        media = "image/webp"
    if media is None:
        raise UsageError(f"{source} is not a PNG, JPEG, GIF or WebP image; convert it to one of those")
    return Image(media, base64.b64encode(data).decode("ascii"), source)


@dataclass(frozen=True)
class InputLine:
    line_no: int  # 1-based
    id: str
    request: Request | None  # None when the line is unusable
    error: str | None = None  # one line naming the fix, prefixed with the line number
    metadata: dict[str, Any] = field(default_factory=dict)


def read_jsonl(lines: Iterable[str | bytes], base_dir: Path | None = None) -> Iterator[InputLine]:
    """Every non-blank line as an InputLine, in order; blank lines are skipped, not numbered away."""
    for line_no, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield _bad(line_no, raw.hex()[:64], "is not UTF-8 text; convert the file to UTF-8")
                continue
        if raw.strip():
            yield parse_line(line_no, raw, base_dir)


def stable_id(line_no: int, text: str) -> str:
    """For lines without an id: the same line of the same file always gets the same one."""
    digest = hashlib.sha256(text.strip().encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"line{line_no}-{digest}"


def _bad(line_no: int, text: str, problem: str, line_id: str | None = None) -> InputLine:
    return InputLine(line_no, line_id or stable_id(line_no, text), None, f"line {line_no}: {problem}")


def parse_line(line_no: int, text: str, base_dir: Path | None = None) -> InputLine:
    if len(text) > MAX_LINE_CHARS:
        return _bad(line_no, text[:1000], f"is {len(text):,} characters, over {MAX_LINE_CHARS:,}; split it")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return _bad(line_no, text, f"is not valid JSON ({exc.msg} at column {exc.colno}); fix or remove it")
    if not isinstance(data, dict):
        return _bad(line_no, text, 'must be a JSON object like {"id": "1", "prompt": "..."}')
    line_id = data.get("id")
    line_id = str(line_id) if isinstance(line_id, (str, int)) and str(line_id).strip() else stable_id(line_no, text)
    try:
        request = _request(data, base_dir or Path.cwd())
    except UsageError as exc:
        return _bad(line_no, text, str(exc), line_id)
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    return InputLine(line_no, line_id, request, None, metadata)


def _request(data: dict[str, Any], base_dir: Path) -> Request:
    images = tuple(read_image(base_dir / str(p)) for p in _list(data, "images") + _list(data, "image"))
    system = _optional(data, "system", str)
    if "messages" in data:
        system_parts, messages = _messages(data["messages"])
        system = "\n".join(([system] if system else []) + system_parts) or None
        if images:
            last = messages[-1]
            messages = messages[:-1] + (Message(last.role, last.text, last.images + images),)
    elif isinstance(data.get("prompt"), str):
        messages = (Message("user", data["prompt"], images),)
    else:
        raise UsageError('needs "prompt" (a string) or "messages" (a list); add one')
    return Request(
        messages=messages,
        system=system,
        max_tokens=_optional(data, "max_tokens", int),
        temperature=_optional(data, "temperature", (int, float)),
        agent=_optional(data, "agent", str),
        tags=tuple(str(t) for t in _list(data, "tags")),
        tier=_optional(data, "tier", str),
        model=_optional(data, "model", str),
        tools=tuple(t for t in _list(data, "tools") if isinstance(t, dict)),
        router=_optional(data, "router", str),
    )


def _optional(data: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise UsageError(f'"{key}" has the wrong type ({type(value).__name__}); see the README for the format')
    if isinstance(value, float) and not math.isfinite(value):  # JSON's NaN and Infinity, which json reads
        raise UsageError(f'"{key}" must be a finite number, not {value}')
    return value


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _messages(raw: Any) -> tuple[list[str], tuple[Message, ...]]:
    """OpenAI-style messages: (system texts, the other messages); system goes to Request.system."""
    if not isinstance(raw, list) or not raw:
        raise UsageError('"messages" must be a non-empty list of {"role", "content"} objects')
    out, system = [], []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or item.get("role") not in _ROLES + ("system",):
            raise UsageError(f'messages[{index}] needs a "role" of user, assistant, tool or system')
        text, images = _content(item.get("content"), index)
        if item["role"] == "system":
            system.append(text)
        else:
            out.append(Message(item["role"], text, images))
    if not any(message.role == "user" for message in out):
        raise UsageError('"messages" has no user message; add one')
    return system, tuple(out)


def _content(content: Any, index: int) -> tuple[str, tuple[Image, ...]]:
    if isinstance(content, str):
        return content, ()
    if content is None:
        return "", ()
    if not isinstance(content, list):
        raise UsageError(f"messages[{index}].content must be a string or a list of parts")
    texts, images = [], []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            images.append(_data_url_image(url, index))
        else:
            raise UsageError(f"messages[{index}] has a content part of type {kind!r}; use text or image_url")
    return "\n".join(texts), tuple(images)


def _data_url_image(url: str, index: int) -> Image:
    head, _, payload = url.partition(",")
    if not head.startswith("data:") or ";base64" not in head:
        raise UsageError(f"messages[{index}]: only data: URLs (base64) are read for images, not remote URLs")
    try:
        data = base64.b64decode(payload, validate=True)
    except ValueError:
        raise UsageError(f"messages[{index}]: the image data is not valid base64") from None
    return image_from_bytes(data, f"messages[{index}]")
