"""Session transcript records, recognised by their content (never by folder name).

One JSONL line is one record. A record is a message (a ``Turn``), a known
record that carries no conversation (a session header, a model change, a
summary: ``IGNORED``), or unknown (``None``: skipped with a warning). Formats:

- OpenClaw session files (``agents/<id>/sessions/<id>.jsonl``) and its
  transcripts tool's ``transcript.jsonl``: a ``{"type": "session", ...}``
  header, then ``{"type": "message", "timestamp": ISO, "message": {"role":
  "user" | "assistant" | "toolResult", "content": [blocks]}}``; blocks are
  ``text``, ``thinking``, ``toolCall``; other types (``custom``,
  ``model_change``, ``compaction``...) are ignored.
- Claude Code (``projects/<project>/<session>.jsonl``): ``{"type": "user" |
  "assistant", "message": {"role", "content": text | [blocks]}, "timestamp"}``;
  blocks ``text``, ``thinking``, ``tool_use``, ``tool_result``; ``summary``,
  ``system``, ``file-history-snapshot``... are ignored.
- Codex rollouts (``sessions/YYYY/MM/DD/rollout-*.jsonl``): ``{"timestamp",
  "type": "response_item", "payload": {"type": "message", "role", "content":
  [{"type": "input_text" | "output_text", "text"}]}}``, ``reasoning``,
  ``function_call``, ``function_call_output`` payloads; ``session_meta``,
  ``turn_context``, ``event_msg`` (which repeats the messages) are ignored.
- Plain ``{"role", "content", "timestamp"}`` lines (also Codex's older
  ``{"type": "message", "role", "content"}``), and ``{"speaker", "text",
  "timestamp"}`` lines of captured speech (the speaker's name is the role). OpenClaw's
  transcripts tool (``transcripts/YYYY-MM-DD/<session>/transcript.jsonl``) is read
  through these: its documentation gives the folder layout, not a line schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

# Roles a turn is shown with. "tool" and "thinking" turns are indexed only with session_tools.
SPOKEN = ("user", "assistant")
# Text blocks of each format: (block type, key holding the text).
TEXT_BLOCKS = {"text": "text", "input_text": "text", "output_text": "text"}
THINKING_BLOCKS = {"thinking": "thinking", "reasoning": "text", "summary_text": "text"}
TOOL_CALL_BLOCKS = ("tool_use", "toolCall", "function_call", "tool_call")
TOOL_RESULT_BLOCKS = ("tool_result", "toolResult", "function_call_output")
# Codex wraps its session context in the first user messages; it is not conversation.
BOILERPLATE = ("<environment_context>", "<user_instructions>", "<permissions instructions>")
# Records that carry a message, by format: anything else with a string "type" is ignored.
MESSAGE_TYPES = ("message", "user", "assistant", "response_item")


@dataclass(frozen=True)
class Turn:
    """One message of a transcript: its JSONL line, who spoke, what was said, when."""

    line: int  # 1-based line of the JSONL file
    role: str  # user, assistant, tool, thinking
    text: str
    time: datetime | None  # local time, or None when the record has no usable timestamp


IGNORED: list[Turn] = []  # a known record with no conversation in it (never appended to)


def parse_record(line: int, record: Any, *, tools: bool) -> list[Turn] | None:
    """The turns of one decoded JSONL record; ``IGNORED`` (empty) for a known
    non-message record, None for something no format knows."""
    if not isinstance(record, dict):
        return None
    kind = record.get("type")
    stamp = record.get("timestamp", record.get("ts"))
    if kind == "response_item":  # Codex
        payload = record.get("payload")
        return _codex(line, payload, stamp, tools=tools) if isinstance(payload, dict) else None
    inner = record.get("message")
    if kind in ("message", "user", "assistant") and isinstance(inner, dict):  # OpenClaw, Claude Code
        if stamp is None:
            stamp = inner.get("timestamp")
        return _message(line, inner.get("role", kind), inner.get("content"), stamp, tools=tools)
    if "role" in record and "content" in record:  # plain, Codex's older lines
        return _message(line, record.get("role"), record.get("content"), stamp, tools=tools)
    speaker, said = record.get("speaker"), record.get("text")
    if isinstance(speaker, str) and isinstance(said, str):  # captured speech
        name = " ".join(speaker.split()) or "speaker"
        return [Turn(line, name, said.strip(), parse_time(stamp))] if said.strip() else IGNORED
    if isinstance(kind, str) and kind not in MESSAGE_TYPES:
        return IGNORED  # a header, a model change, a summary, an event...
    return None


def _codex(line: int, payload: dict[str, Any], stamp: Any, *, tools: bool) -> list[Turn] | None:
    kind = payload.get("type")
    if kind == "message":
        return _message(line, payload.get("role"), payload.get("content"), stamp, tools=tools)
    if kind == "reasoning":
        summary = payload.get("summary")
        return _message(line, "thinking", summary if isinstance(summary, list) else [], stamp, tools=tools)
    if kind in TOOL_CALL_BLOCKS or kind in TOOL_RESULT_BLOCKS:
        return _message(line, "tool", [payload], stamp, tools=tools)
    return IGNORED if isinstance(kind, str) else None


def _message(line: int, role: Any, content: Any, stamp: Any, *, tools: bool) -> list[Turn] | None:
    if not isinstance(role, str):
        return None
    role = {"toolResult": "tool", "tool_result": "tool", "function": "tool"}.get(role, role)
    if role in ("system", "developer"):
        return IGNORED
    if role not in SPOKEN and role not in ("tool", "thinking"):
        return None
    pieces = _pieces(role, content)
    if pieces is None:
        return None
    time = parse_time(stamp)
    turns = []
    for piece_role, text in pieces:
        text = text.strip()
        if not text or (piece_role == "user" and text.startswith(BOILERPLATE)):
            continue
        if piece_role in SPOKEN or tools:
            turns.append(Turn(line, piece_role, text, time))
    return turns


def _pieces(role: str, content: Any) -> list[tuple[str, str]] | None:
    """(role, text) of each part of a message's content; None for content of the wrong type."""
    if isinstance(content, str):
        return [(role, content)]
    if not isinstance(content, list):
        return None
    pieces: list[tuple[str, str]] = []
    for block in content:
        if isinstance(block, str):
            pieces.append((role, block))
            continue
        if not isinstance(block, dict):
            return None
        kind = block.get("type")
        if not isinstance(kind, str):
            return None  # a list or an object as a block's type: of no known format
        if kind in TEXT_BLOCKS and isinstance(block.get("text"), str):
            pieces.append((role, block["text"]))
        elif kind in THINKING_BLOCKS and isinstance(block.get(THINKING_BLOCKS[kind]), str):
            pieces.append(("thinking", block[THINKING_BLOCKS[kind]]))
        elif kind in TOOL_CALL_BLOCKS:
            name = block.get("name")
            arguments = block.get("input", block.get("arguments", block.get("args")))
            pieces.append(("tool", f"{name if isinstance(name, str) else 'tool'}({_compact(arguments)})"))
        elif kind in TOOL_RESULT_BLOCKS:
            result = block.get("content", block.get("output"))
            pieces.append(("tool", _flatten(result)))
    return pieces


def _flatten(value: Any) -> str:
    """A tool result's text: text itself, the texts of a list of blocks, else compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, dict) and isinstance(item.get("text"), str) for item in value):
        return "\n".join(item["text"] for item in value)
    return _compact(value)


def _compact(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 text or epoch seconds/milliseconds, in local time; None if unusable."""
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            seconds = value / 1000 if abs(value) > 1e11 else value
            if seconds < 1e9:  # before 2001: an offset into a recording, not a moment
                return None
            return datetime.fromtimestamp(seconds, tz=timezone.utc).astimezone()
        if isinstance(value, str) and value.strip():
            # A time without an offset is local time; made aware, so that the times of a file
            # that mixes both can be compared (a naive and an aware time cannot).
            return datetime.fromisoformat(value.strip()).astimezone()
    except (ValueError, OverflowError, OSError):
        return None
    return None
