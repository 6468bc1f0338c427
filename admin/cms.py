"""`/cms/`: the analysts' dashboard (SPEC §7, the seed's "new version"). Login required.

- `/cms/` lists files (newest first, 25 a page, optionally only those with an analysis in one status) with their
  analyses. Statuses are live: the page opens the files' event streams (`/events/<file_id>/`) for the files that
  are still moving (at most `MAX_STREAMS`, to leave the browser's connections to one host for everything else)
  and, for all files shown, polls `/cms/status.json` every `POLL_SECONDS`.
- `/cms/analyses/<id>/` shows one analysis: target vs suggested rating, the findings by category as a bar chart
  (Chart.js) and a table, comments, the recommendation and the result file; it follows the file's event stream.
- `/cms/vendor/chart.umd.js` serves Chart.js from the project's `node_modules/` (npm package `chart.js`,
  installed by `make run` / `make test`): nothing is loaded from outside the gateway.
"""
from __future__ import annotations

import json
from functools import lru_cache

from flask import (Blueprint, Response, current_app, flash, jsonify, redirect, render_template, request, send_file,
                   url_for)
from sqlalchemy import func, select

from gateway import analyses
from gateway.fields import RequestError
from gateway.config import PROJECT_ROOT
from gateway.extensions import csrf, db
from gateway.models import SEVERITIES, Analysis, BasisViolation, Comment, File, Recommendation, ReferSession, utc

from .auth import current_user, login_required

bp = Blueprint("cms", __name__, url_prefix="/cms", template_folder="templates", static_folder="static")

PAGE_SIZE = 25
MAX_STREAMS = 4
POLL_SECONDS = 10
AGES = Analysis.AUDIENCES
LIVE_STATUSES = (Analysis.WAITING, Analysis.PROCESSING, Analysis.READY)
STATUSES = (Analysis.WAITING, Analysis.PROCESSING, Analysis.READY, Analysis.DB_READY, Analysis.ERROR)
CHART_JS = PROJECT_ROOT / "node_modules" / "chart.js" / "dist" / "chart.umd.js"


@lru_cache(maxsize=1)
def chart_js_version() -> str:
    try:
        return json.loads((CHART_JS.parent.parent / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "missing"


def status_slug(status: str | None) -> str:
    """The seed's "--------" reads (and styles) as "waiting"."""
    return "waiting" if status == Analysis.WAITING else (status or "")


def result_path(analysis: Analysis) -> str | None:
    """The uploader's capability URL of the result file, as a path on this site (proxy prefix included)."""
    return f"{request.script_root}/results/{analysis.result_key}/" if analysis.result_key else None


def analysis_state(analysis: Analysis) -> dict:
    return {"file_id": analysis.file_id, "status": analysis.status, "reason": analysis.reason,
            "suggested_age_rating": analysis.suggested_age_rating, "result_url": result_path(analysis)}


def file_state(file: File) -> dict:
    return {"state": file.state, "offset": file.offset, "length": file.length}


def rating_verdict(target: str | None, suggested: str | None) -> tuple[str, str]:
    """(css class, words) comparing the audience asked for with the rating the findings suggest."""
    if not suggested or suggested not in AGES:
        return "pending", "no suggestion yet"
    if not target or target not in AGES:
        return "neutral", f"suggested {suggested}"
    step = AGES.index(suggested) - AGES.index(target)
    if step > 0:
        return "over", f"suggested {suggested} is above the target {target}"
    if step < 0:
        return "under", f"suggested {suggested} is below the target {target}"
    return "match", f"suggested {suggested} matches the target"


def findings_of(analysis: Analysis, recommendation: Recommendation | None) -> tuple[str, list[dict]]:
    """Counts by category: the recommendation's when it states them, otherwise summed from the comments."""
    rows: dict[int, dict] = {}
    source = "recommendation"
    counts = recommendation.counts if recommendation is not None else []
    if counts:
        for count in counts:
            rows[count.violation_id] = {"count": count.count, "severity": count.severity}
    else:
        source = "comments"
        for comment in db.session.scalars(select(Comment).where(Comment.analysis_id == analysis.id,
                                                                Comment.violation_id.is_not(None))):
            row = rows.setdefault(comment.violation_id, {"count": 0, "severity": "----"})
            row["count"] += comment.count or 0
            if SEVERITIES.index(comment.severity if comment.severity in SEVERITIES else "----") > \
                    SEVERITIES.index(row["severity"]):
                row["severity"] = comment.severity
    if not rows:
        return source, []
    catalog = {v.id: v for v in db.session.scalars(select(BasisViolation).where(BasisViolation.id.in_(rows)))}
    findings = []
    for violation_id, row in rows.items():
        violation = catalog.get(violation_id)
        findings.append({
            "violation_id": violation_id, "count": row["count"], "severity": row["severity"],
            "name": violation.name if violation else f"#{violation_id}",
            "name_en": violation.name_en if violation else "", "code": violation.code if violation else "",
            "age_min": violation.age_min if violation else None, "age_max": violation.age_max if violation else None,
        })
    findings.sort(key=lambda f: (-f["count"], -SEVERITIES.index(f["severity"]) if f["severity"] in SEVERITIES
                                 else 0, f["name"]))
    return source, findings


@bp.context_processor
def _context():
    return {"user": current_user(), "statuses": STATUSES, "slug": status_slug, "utc": utc}


# -- pages ---------------------------------------------------------------------------------------------------
@bp.get("/")
@login_required
def index():
    page = request.args.get("page", 1, type=int) or 1
    page = max(1, min(page, 100000))
    status = request.args.get("status")
    if status not in STATUSES:
        status = None
    query = select(File)
    if status:
        query = query.where(File.id.in_(select(Analysis.file_id).where(Analysis.status == status)))
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    files = db.session.scalars(query.order_by(File.created_at.desc(), File.id)
                               .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    by_file: dict[str, list[Analysis]] = {f.id: [] for f in files}
    if files:
        for analysis in db.session.scalars(select(Analysis).where(Analysis.file_id.in_(list(by_file)))
                                           .order_by(Analysis.id)):
            by_file[analysis.file_id].append(analysis)
    counts = dict(db.session.execute(select(Analysis.status, func.count()).group_by(Analysis.status)).all())
    live = [f.id for f in files
            if f.state == File.UPLOADING or any(a.status in LIVE_STATUSES for a in by_file[f.id])][:MAX_STREAMS]
    watch = {"files": [f.id for f in files], "streams": live, "poll_seconds": POLL_SECONDS,
             "events_url": url_for("events.file_events", file_id="FILE_ID"),
             "status_url": url_for("cms.status"),
             "analysis_url": url_for("cms.analysis", analysis_id=0)}
    pages = max(1, -(-total // PAGE_SIZE))
    return render_template("cms/index.html", files=files, by_file=by_file, counts=counts, status=status,
                           page=page, pages=pages, total=total, watch=watch)


@bp.get("/analyses/<int:analysis_id>/")
@login_required
def analysis(analysis_id: int):
    item = db.session.get(Analysis, analysis_id)
    if item is None:
        return render_template("cms/missing.html", analysis_id=analysis_id), 404
    file = db.session.get(File, item.file_id)
    recommendation = db.session.scalar(select(Recommendation).where(Recommendation.analysis_id == item.id))
    comments = db.session.scalars(select(Comment).where(Comment.analysis_id == item.id).order_by(Comment.id)).all()
    refer_session = db.session.scalar(select(ReferSession).where(ReferSession.analysis_id == item.id)
                                      .order_by(ReferSession.id.desc()).limit(1))
    source, findings = findings_of(item, recommendation)
    verdict = rating_verdict(item.target_audience, item.suggested_age_rating)
    watch = {"files": [item.file_id], "streams": [item.file_id], "poll_seconds": POLL_SECONDS,
             "events_url": url_for("events.file_events", file_id="FILE_ID"), "status_url": url_for("cms.status"),
             "analysis_id": item.id}
    return render_template("cms/analysis.html", analysis=item, file=file, recommendation=recommendation,
                           comments=comments, refer_session=refer_session, findings=findings,
                           findings_source=source, verdict=verdict, result_url=result_path(item), watch=watch,
                           chart_js=url_for("cms.chart_js", v=chart_js_version()))


@bp.post("/analyses/<int:analysis_id>/restart/")
@login_required
def restart(analysis_id: int):
    csrf.protect()
    item = db.session.get(Analysis, analysis_id)
    if item is None:
        return render_template("cms/missing.html", analysis_id=analysis_id), 404
    try:
        analyses.restart(current_app.config["SETTINGS"], item)
    except RequestError as error:
        db.session.rollback()
        flash(f"Not restarted: {error.message}", "error")
    else:
        flash("A fresh refer session was started and handed off.", "success")
    return redirect(url_for("cms.analysis", analysis_id=analysis_id))


@bp.get("/status.json")
@login_required
def status():
    """Current states of the files named (`?file=<id>`, repeated, at most 100) and of their analyses."""
    ids = [i for i in request.args.getlist("file") if isinstance(i, str) and 0 < len(i) <= 64][:100]
    files = db.session.scalars(select(File).where(File.id.in_(ids))).all() if ids else []
    items = db.session.scalars(select(Analysis).where(Analysis.file_id.in_(ids))).all() if ids else []
    response = jsonify(files={f.id: file_state(f) for f in files},
                       analyses={str(a.id): analysis_state(a) for a in items})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/vendor/chart.umd.js")
def chart_js():
    """Chart.js from node_modules (npm package `chart.js`): the dashboard works offline."""
    if not CHART_JS.is_file():
        return Response("/* Chart.js is missing: run `npm install` in the project (make run does it). */\n", 404,
                        mimetype="text/javascript")
    return send_file(CHART_JS, mimetype="text/javascript", max_age=86400, conditional=True, etag=True)
