"""How numbers look in the tables: percentages, durations, bars. Pure functions, so tests can pin them."""

from __future__ import annotations

BLOCKS = " ▏▎▍▌▋▊▉█"


def pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}"


def duration(seconds: float | None) -> str:
    """`1h02m`, `3m05s`, `42s`; `-` when unknown."""
    if seconds is None or seconds < 0:
        return "-"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def gib(n_bytes: float | None) -> str:
    """Bytes as GiB with one decimal (`3.1 GiB`); `-` when not measured."""
    return "-" if n_bytes is None else f"{n_bytes / 2**30:.1f} GiB"


def bar(fraction: float, width: int = 10) -> str:
    """A text progress bar with eighth-block resolution (renders the same in a terminal and in an SVG)."""
    f = min(1.0, max(0.0, fraction))
    eighths = round(f * width * 8)
    full, part = divmod(eighths, 8)
    out = "█" * full + (BLOCKS[part] if part and full < width else "")
    return out.ljust(width, "·")


def config_label(r: dict) -> str:
    """dataset/model/strategy/technique: a configuration without its seed."""
    return f"{r['model']}/{r['strategy']}/{r['technique']}" + (f" ({r['dataset']})" if r.get("dataset") else "")


def fill_table(
    table,
    header: list[str],
    rows: list[list[str]],
    keys: list[str] | None = None,
    min_width: int = 0,
    markup: bool = True,
    min_widths: dict[str, int] | None = None,
) -> None:
    """Replace a DataTable's columns and rows, sizing each column to its widest cell (markup not counted), and at
    least `min_width` (or `min_widths[header]`) wide: the room a cell updated in place later may need.

    `markup=False` shows the cells as they are: analysis results hold labels such as `layer_freezing[freeze=2]`,
    which the DataTable would otherwise read as markup and drop.
    """
    from rich.markup import escape
    from rich.text import Text

    if not markup:
        header = [escape(h) for h in header]
        rows = [[escape(str(c)) for c in r] for r in rows]
    table.clear(columns=True)
    for i, h in enumerate(header):
        least = (min_widths or {}).get(h, min_width)
        width = max([len(h), least, *(Text.from_markup(str(r[i])).cell_len for r in rows)])
        table.add_column(h, key=h, width=width)
    for j, r in enumerate(rows):
        table.add_row(*r, key=keys[j] if keys else None)


def gpu_lines(tel: dict, names: dict[str, str] | None = None) -> list[str]:
    """The GPU panel: one line per device (the units the runner's workers on it work on, named by `names`,
    utilisation, memory used / total, what the runner holds on it), or one line saying why there is none."""
    if not tel.get("available"):
        return [tel.get("note") or "no NVIDIA GPU"]
    gib = 2**30
    out = []
    for d in tel["devices"]:
        util = "-" if d["util"] is None else f"{d['util']}%"
        mem = f"{d['mem_used'] / gib:.1f}/{d['mem_total'] / gib:.1f} GiB"
        line = f"GPU{d['index']} {d['name']}"
        if d.get("units"):
            line += " · " + ", ".join((names or {}).get(u["id"], f"{u['kind']} {u['id']}") for u in d["units"])
        line += f" · busy {util} · memory {mem}"
        if not tel.get("runner_here"):
            line += " · runner: none on this host"
        elif d["runner_mem"] is None:
            line += " · runner: unknown (NVML lists no processes)"
        elif d["runner_pids"]:
            line += f" · runner {d['runner_mem'] / gib:.1f} GiB (process {', '.join(map(str, d['runner_pids']))})"
        else:
            line += " · runner: not on this GPU"
        out.append(line)
    return out
