"""Renders docs/architecture.mmd to docs/architecture.svg with the standard library only.

No Mermaid or Graphviz renderer is installed in this project's environment, so this script reads the small
subset of Mermaid flowchart syntax the source file uses and draws the SVG itself:

- nodes ``id["label"]`` (box) and ``id[("label")]`` (data store); labels may hold ``<br/>`` line breaks and
  ``<b>``, ``<i>``, ``<code>`` spans;
- edges ``a --> b`` (Airflow task order, grey), ``a -.-> b`` (dotted: "runs" or "polls") and ``a ==> b``
  (data flow, blue), each with an optional ``|label|``;
- ``classDef name fill:..,stroke:..,color:..`` and ``class a,b name``;
- layout hints in Mermaid comments, which Mermaid itself ignores: ``%% @title "..."``,
  ``%% @column N "header"`` and ``%% @grid id column row``.

Usage: ``python3 docs/render_architecture.py [docs/architecture.mmd [docs/architecture.svg]]``.
The output depends only on the source file, so the SVG can be checked for staleness by rendering again. It
refuses a source whose ``<code>...py</code>`` spans name files that are not in the repository.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent

FONT = "Helvetica, Arial, sans-serif"
MONO = "Menlo, Consolas, 'DejaVu Sans Mono', monospace"
FONT_SIZE, MONO_SIZE, LINE_H = 12.0, 11.5, 16.0
# Average advance per character (pixels), a little generous so that text fits in every common font.
CHAR_W = {"": 6.7, "b": 7.3, "i": 6.7, "code": 7.0}
PAD_X, PAD_Y, CYL = 12.0, 9.0, 7.0  # text padding, height of a data store's top ellipse
COL_GAP_MIN, ROW_GAP, MARGIN, HEADER_H, TITLE_H = 44.0, 30.0, 24.0, 26.0, 34.0
EDGE_STYLE = {  # arrow -> (colour, width, dash)
    "-->": ("#7a8699", 1.4, ""),
    "-.->": ("#9aa5b5", 1.2, "4 3"),
    "==>": ("#2f6fb3", 2.2, ""),
}
LEGEND = (("==>", "data flow"), ("-->", "Airflow task order"), ("-.->", "runs / polls"))

NODE_RE = re.compile(r'^(\w+)\s*(\[\(|\[)\s*"(.*)"\s*(\)\]|\])$')
EDGE_RE = re.compile(r"^(\w+)\s*(-->|-\.->|==>)\s*(?:\|([^|]*)\|\s*)?(\w+)$")
SPAN_RE = re.compile(r"<(b|i|code)>(.*?)</\1>")


@dataclass
class Node:
    id: str
    label: str
    store: bool
    col: int = -1
    row: int = -1
    cls: str = ""
    x: float = 0.0  # left
    y: float = 0.0  # top
    w: float = 0.0
    h: float = 0.0

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


@dataclass
class Edge:
    src: str
    dst: str
    kind: str
    label: str
    points: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class Diagram:
    title: str = ""
    columns: dict[int, str] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    classes: dict[str, dict[str, str]] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- parsing


def parse(text: str) -> Diagram:
    """The diagram of a Mermaid source in the subset described in the module docstring."""
    d, grid = Diagram(), {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("%%"):
            hint = line[2:].strip()
            if hint.startswith("@title "):
                d.title = hint[len("@title "):].strip().strip('"')
            elif hint.startswith("@column "):
                _, col, header = hint.split(" ", 2)
                d.columns[int(col)] = header.strip().strip('"')
            elif hint.startswith("@grid "):
                _, node, col, row = hint.split()
                grid[node] = (int(col), int(row))
            continue
        if line.startswith("flowchart") or line.startswith("graph"):
            continue
        if line.startswith("classDef "):
            _, name, style = line.split(None, 2)
            d.classes[name] = dict(kv.split(":", 1) for kv in style.split(","))
            continue
        if line.startswith("class "):
            _, ids, name = line.split()
            for node in ids.split(","):
                d.nodes[node].cls = name
            continue
        if m := NODE_RE.match(line):
            d.nodes[m.group(1)] = Node(m.group(1), m.group(3), store=m.group(2) == "[(")
            continue
        if m := EDGE_RE.match(line):
            d.edges.append(Edge(m.group(1), m.group(4), m.group(2), (m.group(3) or "").strip()))
            continue
        raise ValueError(f"line {number}: not in the supported Mermaid subset: {raw!r}")
    for node in d.nodes.values():
        if node.id not in grid:
            raise ValueError(f"node {node.id!r} has no '%% @grid {node.id} COLUMN ROW' hint")
        node.col, node.row = grid[node.id]
    for e in d.edges:
        for end in (e.src, e.dst):
            if end not in d.nodes:
                raise ValueError(f"edge {e.src} {e.kind} {e.dst}: unknown node {end!r}")
    return d


def spans(line: str) -> list[tuple[str, str]]:
    """A label line as (style, text) pieces; style is "", "b", "i" or "code"."""
    out, pos = [], 0
    for m in SPAN_RE.finditer(line):
        if m.start() > pos:
            out.append(("", line[pos:m.start()]))
        out.append((m.group(1), m.group(2)))
        pos = m.end()
    if pos < len(line):
        out.append(("", line[pos:]))
    return out


def text_width(line: str) -> float:
    return sum(CHAR_W[style] * len(text) for style, text in spans(line))


def lines_of(label: str) -> list[str]:
    return [part.strip() for part in re.split(r"<br\s*/?>", label)]


# ---------------------------------------------------------------------------------------------- layout


def layout(d: Diagram) -> tuple[float, float]:
    """Places nodes on their grid and routes edges; returns the canvas size."""
    cols = sorted({n.col for n in d.nodes.values()})
    rows = sorted({n.row for n in d.nodes.values()})
    col_w = {c: max(text_width(x) for n in d.nodes.values() if n.col == c for x in lines_of(n.label)) + 2 * PAD_X
             for c in cols}
    row_h = {r: max(len(lines_of(n.label)) * LINE_H + 2 * PAD_Y + (2 * CYL if n.store else 0)
                    for n in d.nodes.values() if n.row == r) for r in rows}
    # A gap is wide enough for the labels of the horizontal edges that cross it, and for the routed edges.
    gap = {}
    for c in cols[:-1]:
        crossing = [e for e in d.edges if {d.nodes[e.src].col, d.nodes[e.dst].col} == {c, c + 1}]
        widest = max((text_width(e.label) for e in crossing if e.label), default=0.0)
        routed = sum(1 for e in crossing if d.nodes[e.src].row != d.nodes[e.dst].row)
        gap[c] = max(COL_GAP_MIN, widest + 28, 36 + 14 * routed)
    x, col_x = MARGIN, {}
    for c in cols:
        col_x[c] = x
        x += col_w[c] + gap.get(c, 0)
    width = x + MARGIN
    y, row_y = MARGIN + (TITLE_H if d.title else 0) + (HEADER_H if d.columns else 0), {}
    for r in rows:
        row_y[r] = y
        y += row_h[r] + ROW_GAP
    height = y - ROW_GAP + MARGIN + 30  # room for the legend
    for n in d.nodes.values():
        n.x, n.y, n.w, n.h = col_x[n.col], row_y[n.row], col_w[n.col], row_h[n.row]
    _route(d, col_x, col_w, gap)
    return width, height


def _route(d: Diagram, col_x: dict[int, float], col_w: dict[int, float], gap: dict[int, float]) -> None:
    """Straight edges within a row or between adjacent rows of one column; the others leave the source's side,
    run down (or up) a vertical lane in the gap beside the target column, and enter the target's side."""
    routed = [e for e in d.edges if d.nodes[e.src].row != d.nodes[e.dst].row
              and d.nodes[e.src].col != d.nodes[e.dst].col]
    # Lanes from left to right in order of (first row, last row): with ports ordered to match, such edges
    # between the same two columns do not cross each other.
    routed.sort(key=lambda e: (min(d.nodes[e.src].row, d.nodes[e.dst].row), max(d.nodes[e.src].row, d.nodes[e.dst].row)))
    lanes: dict[int, list[Edge]] = {}
    for e in routed:
        s, t = d.nodes[e.src], d.nodes[e.dst]
        lanes.setdefault(min(s.col, t.col), []).append(e)
    lane_x = {}
    for c, edges in lanes.items():
        left, span = col_x[c] + col_w[c], gap[c]
        for i, e in enumerate(edges):
            lane_x[id(e)] = left + span * (i + 1) / (len(edges) + 1)
    # Ports on a node's left/right side: edges leaving towards a later row use the lower half, edges arriving
    # from an earlier row the upper half (and the reverse); same-row edges use the middle.
    ports: dict[tuple[str, str, str], list[Edge]] = {}
    for e in routed:
        s, t = d.nodes[e.src], d.nodes[e.dst]
        s_side = "right" if t.col > s.col else "left"
        t_side = "left" if t.col > s.col else "right"
        ports.setdefault((s.id, s_side, "down" if t.row > s.row else "up"), []).append(e)
        ports.setdefault((t.id, t_side, "from_above" if s.row < t.row else "from_below"), []).append(e)
    # Within one side, the lane nearest to the node gets the port furthest from the middle: then the edges'
    # horizontal parts never cross each other's lanes.
    port_y: dict[tuple[int, str], float] = {}
    for (node_id, side, where), edges in ports.items():
        n = d.nodes[node_id]
        side_x = n.x + n.w if side == "right" else n.x
        edges.sort(key=lambda e: abs(lane_x[id(e)] - side_x))
        sign = 1 if where in ("down", "from_below") else -1
        role = "src" if where in ("down", "up") else "dst"
        step = min(12.0, (n.h / 2 - 6) / len(edges))
        for i, e in enumerate(edges):
            port_y[(id(e), role)] = n.cy + sign * step * (len(edges) - i)
    for e in d.edges:
        s, t = d.nodes[e.src], d.nodes[e.dst]
        if s.row == t.row:
            if t.col > s.col:
                e.points = [(s.x + s.w, s.cy), (t.x, t.cy)]
            else:
                e.points = [(s.x, s.cy), (t.x + t.w, t.cy)]
        elif s.col == t.col:
            if t.row > s.row:
                e.points = [(s.cx, s.y + s.h), (t.cx, t.y)]
            else:
                e.points = [(s.cx, s.y), (t.cx, t.y + t.h)]
        else:
            sx = s.x + s.w if t.col > s.col else s.x
            tx = t.x if t.col > s.col else t.x + t.w
            sy, ty, lx = port_y[(id(e), "src")], port_y[(id(e), "dst")], lane_x[id(e)]
            e.points = [(sx, sy), (lx, sy), (lx, ty), (tx, ty)]


# ---------------------------------------------------------------------------------------------- drawing


def _text_line(x: float, y: float, line: str, anchor: str = "start", color: str = "") -> str:
    parts = []
    for style, text in spans(line):
        attrs = ""
        if style == "b":
            attrs = ' font-weight="bold"'
        elif style == "i":
            attrs = ' font-style="italic"'
        elif style == "code":
            attrs = f' font-family="{MONO}" font-size="{MONO_SIZE}"'
        parts.append(f"<tspan{attrs}>{escape(text)}</tspan>")
    fill = f' fill="{color}"' if color else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{fill} xml:space="preserve">{"".join(parts)}</text>'


def _node(n: Node, style: dict[str, str]) -> list[str]:
    fill, stroke, color = style.get("fill", "#ffffff"), style.get("stroke", "#333333"), style.get("color", "#111111")
    out = []
    if n.store:  # a cylinder: body, then the top ellipse drawn over it
        rx, ry = n.w / 2, CYL
        body = (f"M{n.x:.1f},{n.y + ry:.1f} L{n.x:.1f},{n.y + n.h - ry:.1f} "
                f"A{rx:.1f},{ry:.1f} 0 0 0 {n.x + n.w:.1f},{n.y + n.h - ry:.1f} "
                f"L{n.x + n.w:.1f},{n.y + ry:.1f} Z")
        out.append(f'<path d="{body}" fill="{fill}" stroke="{stroke}" stroke-width="1.3"/>')
        out.append(f'<ellipse cx="{n.cx:.1f}" cy="{n.y + ry:.1f}" rx="{rx:.1f}" ry="{ry:.1f}" fill="{fill}" '
                   f'stroke="{stroke}" stroke-width="1.3"/>')
        top = n.y + 2 * ry
    else:
        out.append(f'<rect x="{n.x:.1f}" y="{n.y:.1f}" width="{n.w:.1f}" height="{n.h:.1f}" rx="6" fill="{fill}" '
                   f'stroke="{stroke}" stroke-width="1.3"/>')
        top = n.y
    lines = lines_of(n.label)
    body_h = n.y + n.h - top
    first = top + (body_h - len(lines) * LINE_H) / 2 + LINE_H * 0.75
    for i, line in enumerate(lines):
        out.append(_text_line(n.x + PAD_X, first + i * LINE_H, line, color=color))
    return out


def _edge(e: Edge) -> list[str]:
    color, width, dash = EDGE_STYLE[e.kind]
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in e.points)
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    marker = {"-->": "grey", "-.->": "light", "==>": "blue"}[e.kind]
    out = [f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="{width}"{dash_attr} '
           f'marker-end="url(#arrow-{marker})"/>']
    if e.label:
        (x0, y0), (x1, y1) = _label_segment(e.points)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        w = text_width(e.label) + 8
        out.append(f'<rect x="{cx - w / 2:.1f}" y="{cy - 8:.1f}" width="{w:.1f}" height="15" rx="3" '
                   f'fill="#ffffff" fill-opacity="0.92"/>')
        out.append(_text_line(cx, cy + 4, e.label, anchor="middle", color=color))
    return out


def _label_segment(points: list[tuple[float, float]]) -> tuple[tuple[float, float], tuple[float, float]]:
    """The segment that carries the label: the only one, or the vertical lane of a routed edge."""
    if len(points) == 2:
        return points[0], points[1]
    return points[1], points[2]


def render(d: Diagram) -> str:
    width, height = layout(d)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="{FONT}" font-size="{FONT_SIZE}">',
           "<!-- Generated by docs/render_architecture.py from docs/architecture.mmd; do not edit by hand. -->",
           "<defs>"]
    for name, kind in (("grey", "-->"), ("light", "-.->"), ("blue", "==>")):
        color = EDGE_STYLE[kind][0]
        out.append(f'<marker id="arrow-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
                   f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>')
    out += ["</defs>", f'<rect width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>']
    if d.title:
        out.append(f'<text x="{MARGIN}" y="{MARGIN + 14}" font-size="16" font-weight="bold" fill="#1f2a38">'
                   f"{escape(d.title)}</text>")
    header_y = MARGIN + (TITLE_H if d.title else 0) + 12
    for col, header in d.columns.items():
        members = [n for n in d.nodes.values() if n.col == col]
        if members:
            out.append(f'<text x="{members[0].x:.1f}" y="{header_y:.1f}" font-weight="bold" fill="#5b6b82">'
                       f"{escape(header)}</text>")
    for e in d.edges:  # edges first, so that boxes and labels sit on top of line ends
        out += _edge(e)[:1]
    for n in d.nodes.values():
        out += _node(n, d.classes.get(n.cls, {}))
    for e in d.edges:
        out += _edge(e)[1:]
    x, y = MARGIN, height - MARGIN - 4
    for kind, text in LEGEND:
        color, w, dash = EDGE_STYLE[kind]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{x:.1f}" y1="{y - 4:.1f}" x2="{x + 34:.1f}" y2="{y - 4:.1f}" stroke="{color}" '
                   f'stroke-width="{w}"{dash_attr}/>')
        out.append(f'<text x="{x + 42:.1f}" y="{y:.1f}" fill="#5b6b82">{escape(text)}</text>')
        x += 42 + text_width(text) + 36
    out.append("</svg>")
    return "\n".join(out) + "\n"


def missing_files(d: Diagram, root: Path) -> list[str]:
    """The ``<code>path.py</code>`` files named in node labels that do not exist under ``root``."""
    named = {text for n in d.nodes.values() for line in lines_of(n.label) for style, text in spans(line)
             if style == "code" and text.endswith(".py")}
    return sorted(name for name in named if not (root / name).is_file())


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else HERE / "architecture.mmd"
    target = Path(argv[2]) if len(argv) > 2 else source.with_suffix(".svg")
    diagram = parse(source.read_text())
    missing = missing_files(diagram, HERE.parent)
    if missing:  # the picture must name modules of this tree
        print(f"error: {source} names files that do not exist: {', '.join(missing)}", file=sys.stderr)
        return 1
    target.write_text(render(diagram))
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
