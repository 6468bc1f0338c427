"""`/admin/`: flask-admin over every table (SPEC §7, the seed's "old version").

Every view needs an analyst's login (anonymous requests are sent to /login/) and every POST carries the
CSRF token (checked here for all admin forms, actions and deletes alike). Secrets stay out of sight: refer keys
(and their hashes) are never listed, shown, searched, filtered or exported, and password hashes neither; a
password is set through a "New password" field that is hashed on save.

Rows that other parts of the gateway own are read-only here: files (tus uploads: removing one is a tus DELETE,
which also removes its bytes), refer sessions and keys (their life is rotation, hand-off and expiry). Analyses
are changed through the actions "Restart refer session" and "Retry hand-off", or by editing their descriptive
fields. The violations catalog is fully editable; an edited row is marked `edited`, so `flask load_violations`
keeps it (unless `--force`).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from flask import current_app, flash, redirect, request, url_for
from flask_admin import Admin, AdminIndexView, expose
from flask_admin.actions import action
from flask_admin.contrib.sqla import ModelView
from flask_admin.contrib.sqla.ajax import QueryAjaxModelLoader
from flask_admin.model import typefmt
from flask_admin.theme import Bootstrap4Theme
from markupsafe import Markup
from sqlalchemy import select, update
from wtforms import PasswordField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from gateway.fields import RequestError
from gateway import analyses, handoff
from gateway.extensions import csrf, db
from gateway.models import (SEVERITIES, Analysis, BasisViolation, Comment, File, Recommendation, ReferKey,
                            ReferSession, User, ViolationCount)

from .auth import current_user, login_url

AGES = Analysis.AUDIENCES
AGE_CHOICES = [(age, age) for age in AGES]  # nullable columns get flask-admin's own blank choice too
SEVERITY_CHOICES = [(s, s) for s in SEVERITIES]


# -- shared behaviour ------------------------------------------------------------------------------------
class LoginRequired:
    """Mixed into every admin view: login first, and CSRF on every POST."""

    def is_accessible(self) -> bool:
        return current_user() is not None

    def inaccessible_callback(self, name, **kwargs):
        return redirect(login_url())

    def _handle_view(self, name, **kwargs):
        if not self.is_accessible():
            return self.inaccessible_callback(name, **kwargs)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            csrf.protect()  # the token comes from the csrf_token() global that flask-admin's templates render
        return None


def _epoch(view, context, model, name):
    value = getattr(model, name)
    if value is None:
        return ""
    return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(limit: int):
    def formatter(view, context, model, name):
        value = getattr(model, name) or ""
        return value if len(value) <= limit else value[:limit] + "…"
    return formatter


def _size(view, context, model, name):
    value = getattr(model, name)
    if value is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(value)


def _cms_link(view, context, model, name):
    analysis_id = getattr(model, name)
    if analysis_id is None:
        return ""
    return Markup('<a href="{}" title="open in the dashboard">{}</a>').format(
        url_for("cms.analysis", analysis_id=analysis_id), analysis_id)


def _blank_to_none(model, *names) -> None:
    for name in names:
        if getattr(model, name) == "":
            setattr(model, name, None)


class LabelledLoader(QueryAjaxModelLoader):
    """A related-row picker (searching as you type) that names rows readably."""

    def __init__(self, name, model, label, **options):
        super().__init__(name, db.session, model, **options)
        self.label = label

    def format(self, model):
        return None if model is None else (getattr(model, self.pk), self.label(model))


def _analysis_picker():
    return LabelledLoader("analysis", Analysis,
                          lambda a: f"#{a.id} {a.title or 'untitled'} ({a.status}, file {a.file_id[:8]}…)",
                          fields=(Analysis.id, Analysis.title, Analysis.file_id), page_size=10)


def _datetime(view, value, name):
    if value.tzinfo is None:  # stored as UTC; SQLite returns it without the zone
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class SecureModelView(LoginRequired, ModelView):
    column_type_formatters = {**typefmt.BASE_FORMATTERS, datetime: _datetime}
    column_type_formatters_detail = {**typefmt.DETAIL_FORMATTERS, datetime: _datetime}
    page_size = 50
    can_view_details = True
    can_export = False
    can_set_page_size = True


class ReadOnlyView(SecureModelView):
    can_create = False
    can_edit = False
    can_delete = False


# -- the views -----------------------------------------------------------------------------------------------
class IndexView(LoginRequired, AdminIndexView):
    @expose("/")
    def index(self):
        return self.render("admin_panel/index.html", user=current_user())


class FileView(ReadOnlyView):
    column_display_pk = True
    column_list = ("id", "filename", "state", "length", "offset", "content_type", "created_at", "completed_at")
    column_details_list = ("id", "filename", "state", "length", "offset", "content_type", "sha256",
                           "created_at", "completed_at", "expires_at", "submissions")
    column_searchable_list = ("id", "filename", "sha256")
    column_filters = ("state", "content_type", "created_at")
    column_default_sort = ("created_at", True)
    column_formatters = {"id": _short(12), "length": _size, "offset": _size}
    column_formatters_detail = {"length": _size, "offset": _size}


class AnalysisView(SecureModelView):
    can_create = False  # analyses are requested through POST /cinema/ (slot count, upload state)
    column_list = ("id", "file_id", "title", "status", "reason", "target_audience", "suggested_age_rating",
                   "created_at", "updated_at")
    column_searchable_list = ("title", "file_id", "reason")
    column_filters = ("status", "target_audience", "suggested_age_rating", "created_at")
    column_default_sort = ("id", True)
    column_formatters = {"id": _cms_link, "file_id": _short(12)}
    form_columns = ("title", "target_audience", "suggested_age_rating")
    form_choices = {"target_audience": AGE_CHOICES, "suggested_age_rating": AGE_CHOICES}

    def on_model_change(self, form, model, is_created):
        _blank_to_none(model, "target_audience", "suggested_age_rating")

    @action("restart", "Restart refer session",
            "Start a fresh refer session (new key, new hand-off) for each selected analysis in error?")
    def action_restart(self, ids):
        settings = current_app.config["SETTINGS"]
        done, failed = [], []
        for analysis_id in ids:
            analysis = db.session.get(Analysis, int(analysis_id))
            if analysis is None:
                failed.append(f"#{analysis_id}: no such analysis")
                continue
            try:
                analyses.restart(settings, analysis)
            except RequestError as error:
                db.session.rollback()
                failed.append(f"#{analysis_id}: {error.message}")
            else:
                done.append(f"#{analysis_id}")
        if done:
            flash(f"Refer session restarted for {', '.join(done)}.", "success")
        if failed:
            flash("Not restarted: " + "; ".join(failed), "error")

    @action("retry_handoff", "Retry hand-off",
            "Hand the selected analyses to the analyzer again now (only live sessions not yet delivered)?")
    def action_retry_handoff(self, ids):
        done, failed = [], []
        for analysis_id in ids:
            session = db.session.scalar(select(ReferSession).where(ReferSession.analysis_id == int(analysis_id))
                                        .order_by(ReferSession.id.desc()).limit(1))
            now = time.time()
            if session is None:
                failed.append(f"#{analysis_id}: no refer session")
                continue
            if session.state != ReferSession.LIVE:
                failed.append(f"#{analysis_id}: its refer session is {session.state}"
                              f"{' (restart it instead)' if session.state in ('expired', 'failed') else ''}")
                continue
            if session.handoff_state == ReferSession.HANDOFF_DELIVERED:
                failed.append(f"#{analysis_id}: the hand-off was already delivered")
                continue
            if session.ends_at <= now:
                failed.append(f"#{analysis_id}: its refer session has run out")
                continue
            # Conditional, like every refer-session transition: a delivery that lands meanwhile wins.
            moved = db.session.execute(update(ReferSession).where(
                ReferSession.id == session.id, ReferSession.state == ReferSession.LIVE,
                ReferSession.handoff_state != ReferSession.HANDOFF_DELIVERED,
            ).values(handoff_state=ReferSession.HANDOFF_PENDING, handoff_next_at=now)).rowcount
            db.session.commit()
            if not moved:
                failed.append(f"#{analysis_id}: the session changed meanwhile")
                continue
            handoff.enqueue_delivery(session.id)
            done.append(f"#{analysis_id}")
        if done:
            flash(f"Hand-off queued again for {', '.join(done)}.", "success")
        if failed:
            flash("No hand-off retried: " + "; ".join(failed), "error")


class ReferSessionView(ReadOnlyView):
    column_list = ("id", "analysis_id", "state", "started_at", "ends_at", "next_rotation_at", "rotations",
                   "frozen_until", "handoff_state", "handoff_attempts", "handoff_next_at", "handoff_error")
    column_details_list = column_list + ("current_key_id", "previous_key_id", "previous_valid_until",
                                         "frozen_key_id")
    column_filters = ("state", "handoff_state", "analysis_id")
    column_default_sort = ("id", True)
    column_formatters = {name: _epoch for name in ("started_at", "ends_at", "next_rotation_at", "frozen_until",
                                                   "handoff_next_at", "previous_valid_until")}
    column_formatters["analysis_id"] = _cms_link
    column_formatters_detail = dict(column_formatters)


class ReferKeyView(ReadOnlyView):
    """Refer keys are secrets: only which session a key belongs to and when it was issued."""
    can_view_details = False
    column_list = ("id", "session_id", "issued_at")
    column_details_list = ("id", "session_id", "issued_at")
    column_searchable_list = ()
    column_filters = ("session_id",)
    column_sortable_list = ("id", "session_id", "issued_at")
    column_default_sort = ("id", True)
    column_formatters = {"issued_at": _epoch}
    column_export_list = ("id", "session_id", "issued_at")


class CommentView(SecureModelView):
    column_list = ("id", "analysis_id", "author", "violation", "severity", "count", "location", "text", "quote",
                   "created_at")
    column_searchable_list = ("text", "quote", "location")
    column_filters = ("author", "severity", "analysis_id", "violation_id")
    column_default_sort = ("id", True)
    column_formatters = {"text": _short(120), "quote": _short(80), "analysis_id": _cms_link}
    form_columns = ("analysis", "author", "violation", "severity", "count", "location", "quote", "text")
    form_choices = {"author": [(Comment.USER, Comment.USER), (Comment.AI, Comment.AI)],
                    "severity": SEVERITY_CHOICES}
    form_ajax_refs = {"analysis": _analysis_picker()}
    form_args = {"analysis": {"validators": [DataRequired()]}}


class RecommendationView(SecureModelView):
    column_list = ("id", "analysis_id", "rating", "age_rating", "text", "user_comment_id", "created_at",
                   "updated_at")
    column_searchable_list = ("text",)
    column_filters = ("rating", "age_rating", "analysis_id")
    column_default_sort = ("id", True)
    column_formatters = {"text": _short(160), "analysis_id": _cms_link}
    form_columns = ("analysis", "text", "rating", "age_rating", "user_comment_id", "counts")
    form_choices = {"rating": SEVERITY_CHOICES, "age_rating": AGE_CHOICES}
    form_ajax_refs = {"analysis": _analysis_picker()}
    form_args = {"analysis": {"validators": [DataRequired()]}}
    inline_models = ((ViolationCount, {"form_columns": ("id", "violation", "count", "severity"),
                                       "form_choices": {"severity": SEVERITY_CHOICES}}),)

    def on_model_change(self, form, model, is_created):
        _blank_to_none(model, "age_rating")


class ViolationCountView(SecureModelView):
    column_list = ("id", "recommendation_id", "violation", "count", "severity")
    column_filters = ("severity", "recommendation_id", "violation_id")
    column_default_sort = ("id", True)
    form_columns = ("recommendation", "violation", "count", "severity")
    form_choices = {"severity": SEVERITY_CHOICES}
    form_ajax_refs = {"recommendation": LabelledLoader(
        "recommendation", Recommendation, lambda r: f"#{r.id} of analysis #{r.analysis_id} ({r.rating})",
        fields=(Recommendation.id, Recommendation.analysis_id, Recommendation.text), page_size=10)}
    form_args = {"recommendation": {"validators": [DataRequired()]}, "violation": {"validators": [DataRequired()]}}


class BasisViolationView(SecureModelView):
    """The catalog. Deleting is not offered: `flask load_violations` would bring the row back; edit it instead."""
    can_delete = False
    column_list = ("id", "code", "name", "name_en", "age_marks", "age_min", "age_max", "edited")
    column_details_list = ("id", "code", "name", "name_en", "context", "age_marks", "age_min", "age_max",
                           "marks", "edited")
    column_searchable_list = ("code", "name", "name_en", "context", "marks")
    column_filters = ("age_min", "age_max", "edited")
    column_default_sort = ("id", False)
    column_formatters = {"name": _short(90)}
    form_columns = ("code", "name", "name_en", "context", "age_marks", "age_min", "age_max", "marks")
    form_choices = {"age_min": AGE_CHOICES, "age_max": AGE_CHOICES}
    form_args = {"code": {"validators": [DataRequired(), Length(max=64)]},
                 "name": {"validators": [DataRequired(), Length(max=255)]}}

    def on_model_change(self, form, model, is_created):
        _blank_to_none(model, "age_min", "age_max")
        if model.age_min and model.age_max and AGES.index(model.age_min) > AGES.index(model.age_max):
            raise ValidationError("the lowest age mark is above the highest")
        model.edited = True  # kept by `flask load_violations` unless --force


class UserView(SecureModelView):
    """Analysts. The password hash is never shown; "New password" sets one (hashed on save)."""
    column_list = ("id", "username", "created_at")
    column_details_list = ("id", "username", "created_at")
    column_searchable_list = ("username",)
    column_default_sort = ("id", False)
    form_columns = ("username", "new_password")
    form_extra_fields = {"new_password": PasswordField(
        "New password", validators=[Optional(), Length(min=8, max=1024)],
        description="At least 8 characters. Leave empty to keep the current password. "
                    "Changing it ends the user's open sessions.")}
    form_args = {"username": {"validators": [DataRequired(), Length(max=80)]}}

    def on_model_change(self, form, model, is_created):
        password = form.new_password.data
        model.__dict__.pop("new_password", None)  # populate_obj put the plain text on the object
        if password:
            model.set_password(password)
        elif is_created:
            raise ValidationError("a new user needs a password")


def build(app) -> Admin:
    theme = Bootstrap4Theme(swatch="default", base_template="admin_panel/base.html", fluid=True)
    admin = Admin(app, name="Cinema gateway", url="/admin", theme=theme,
                  index_view=IndexView(url="/admin", endpoint="admin"))
    session = db.session
    for view, model, name, slug, category in (
        (FileView, File, "Files", "file", None),
        (AnalysisView, Analysis, "Analyses", "analysis", None),
        (CommentView, Comment, "Comments", "comment", "Findings"),
        (RecommendationView, Recommendation, "Recommendations", "recommendation", "Findings"),
        (ViolationCountView, ViolationCount, "Violation counts", "violationcount", "Findings"),
        (BasisViolationView, BasisViolation, "Violations catalog", "basisviolation", None),
        (ReferSessionView, ReferSession, "Refer sessions", "refersession", "Refer"),
        (ReferKeyView, ReferKey, "Refer keys", "referkey", "Refer"),
        (UserView, User, "Users", "user", None),
    ):
        admin.add_view(view(model, session, name=name, endpoint=f"admin_{slug}", url=slug, category=category))
    return admin
