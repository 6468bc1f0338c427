"""The built-in analyzer's result file: a self-contained HTML report (summary, rating, findings by category
and by scene)."""
from __future__ import annotations

from html import escape

from gateway.models import AGES

from .assess import Assessment

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:60rem;margin:2rem auto;
padding:0 1rem;color:#1d2430;line-height:1.45}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #dde2ea;vertical-align:top}
.rating{font-size:2rem;font-weight:700}.over{color:#b42318}.ok{color:#067647}
blockquote{margin:.2rem 0;color:#475467;font-style:italic}
"""


def render(assessment: Assessment, *, title: str, filename: str, target: str | None, verdict: str) -> bytes:
    found = sorted(assessment.results.values(), key=lambda r: (-r.count, r.code))
    rows = "".join(
        f"<tr><td>{escape(assessment.catalog[r.code].name)}<br><small>{escape(assessment.catalog[r.code].name_en)}"
        f"</small></td><td>{r.count}</td><td>{escape(r.level)}</td><td>{escape(assessment.age_of(r.code) or '—')}"
        f"</td></tr>" for r in found)
    by_scene: dict[int, list] = {}
    for result in found:
        for match in result.matches:
            by_scene.setdefault(match.scene.number, []).append(match)
    scenes = ""
    for scene in assessment.scenes:
        matches = sorted(by_scene.get(scene.number, []), key=lambda m: m.line_number)
        if not matches:
            continue
        items = "".join(
            f"<li><b>{escape(assessment.catalog[m.code].name)}</b> ({escape(m.level)}), line {m.line_number}"
            f"<blockquote>{escape(m.line[:300])}</blockquote></li>" for m in matches)
        scenes += f"<h3>{escape(scene.label)}</h3><ul>{items}</ul>"
    over = target and assessment.suggested_age != target and \
        AGES.index(assessment.suggested_age) > AGES.index(target)
    html = f"""<!doctype html><html lang="ru"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>{escape(title or filename)}</title>
<style>{STYLE}</style></head><body>
<h1>Age-rating report: {escape(title or filename)}</h1>
<p>File: {escape(filename)} · scenes: {len(assessment.scenes)} · categories found: {len(found)}</p>
<p>Suggested rating <span class="rating {'over' if over else 'ok'}">{escape(assessment.suggested_age)}</span>
{f' · target audience {escape(target)}' if target else ''}</p>
<p>{escape(verdict)}</p>
<h2>Findings by category</h2>
{f'<table><tr><th>Category</th><th>Occurrences</th><th>Severity</th><th>Age</th></tr>{rows}</table>' if rows
 else '<p>No category of the classification was found.</p>'}
<h2>Findings by scene</h2>{scenes or '<p>—</p>'}
</body></html>"""
    return html.encode("utf-8")
