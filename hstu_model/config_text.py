"""Protobuf text-format parsing that keeps line numbers, so config errors can name the field and the line."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from google.protobuf import text_format
from google.protobuf.message import Message


class ConfigError(ValueError):
    """A config value is wrong. Carries the field path (``model_config.dlrm_hstu.max_seq_len``) and line."""

    def __init__(self, message: str, field_path: str = "", line: int | None = None, source: str = ""):
        self.field_path = field_path
        self.line = line
        self.source = source
        where = source or "config"
        if line is not None:
            where += f":{line}"
        prefix = f"{where}: {field_path}: " if field_path else f"{where}: "
        super().__init__(prefix + message)
        self.reason = message


_TOKEN = re.compile(
    r'(?P<comment>#[^\n]*)|(?P<string>"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\')'
    r"|(?P<word>[A-Za-z0-9_.+\-]+)|(?P<punct>[{}\[\]:<>,;])|(?P<newline>\n)|(?P<space>[ \t\r]+)|(?P<other>.)"
)
_INDEX = re.compile(r"\[\d+\]")


@dataclass
class FieldLines:
    """Maps field paths of a parsed text message to the line where each field appears."""

    source: str = ""
    _lines: dict[str, int] = field(default_factory=dict)

    def line(self, path: str) -> int | None:
        """Line of ``path`` (``a.b[2].c``; an unindexed part means its first occurrence), or None."""
        parts = []
        for part in path.split("."):
            parts.append(part if _INDEX.search(part) else part + "[0]")
        return self._lines.get(".".join(parts))

    def error(self, path: str, message: str) -> ConfigError:
        """A ConfigError for ``path``, with its line when the field was written in the text."""
        line = self.line(path)
        probe = path
        while line is None and "." in probe:  # a missing field: point at its enclosing message
            probe = probe.rsplit(".", 1)[0]
            line = self.line(probe)
        return ConfigError(message, path, line, self.source)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, line = [], 1
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "newline":
            line += 1
        elif kind in ("word", "string", "punct"):
            out.append((kind, m.group(), line))
    return out


def _index_lines(text: str, source: str) -> FieldLines:
    lines = FieldLines(source)
    stack: list[tuple[str, dict[str, int]]] = [("", {})]
    toks = _tokens(text)
    i = 0
    while i < len(toks):
        kind, value, line = toks[i]
        if kind == "punct" and value in "}>":
            if len(stack) > 1:
                stack.pop()
            i += 1
            continue
        if kind != "word" or i + 1 >= len(toks):
            i += 1
            continue
        prefix, counts = stack[-1]
        index = counts.get(value, 0)
        nxt = toks[i + 1][1]
        if nxt == ":" and i + 2 < len(toks) and toks[i + 2][1] == "[":  # name: [v1, v2]
            j = i + 3
            while j < len(toks) and toks[j][1] != "]":
                if toks[j][0] != "punct":
                    lines._lines[f"{prefix}{value}[{index}]"] = toks[j][2]
                    index += 1
                j += 1
            counts[value] = index
            i = j + 1
            continue
        path = f"{prefix}{value}[{index}]"
        lines._lines.setdefault(path, line)
        counts[value] = index + 1
        if nxt in "{<" or (nxt == ":" and i + 2 < len(toks) and toks[i + 2][1] in "{<"):
            stack.append((path + ".", {}))
            i += 2 if nxt in "{<" else 3
        else:
            i += 3  # name : value
    return lines


def parse_text(text: str, message: Message, source: str = "") -> FieldLines:
    """Parses protobuf text format into ``message``; returns the field lines for later validation errors.

    Raises:
        ConfigError: on a syntax error, an unknown field or a value of the wrong type, with the line.
    """
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        line = exc.GetLine() if hasattr(exc, "GetLine") else None
        reason = re.sub(r"^\d+:\d+ : ", "", str(exc))
        raise ConfigError(reason, "", line, source) from None
    return _index_lines(text, source)
