"""Analysts' side (SPEC §7): login with CSRF and throttling, /admin/ (flask-admin) and /cms/ (the dashboard)."""
from __future__ import annotations

import re
import secrets
import time

import pytest
from sqlalchemy import select

from gateway.extensions import db
from gateway.models import (Analysis, BasisViolation, Comment, File, Recommendation, ReferKey, ReferSession, User,
                            ViolationCount)

PASSWORD = "correct horse battery"
MODEL_SLUGS = ("file", "analysis", "comment", "recommendation", "violationcount", "basisviolation", "refersession",
               "referkey", "user")


def csrf_from(html: str) -> str:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or \
        re.search(r'value="([^"]+)"[^>]*name="csrf_token"', html)
    assert found, "no csrf_token in the page"
    return found.group(1)


def login_form_token(client) -> str:
    answer = client.get("/login/")
    assert answer.status_code == 200
    return csrf_from(answer.get_data(as_text=True))


def log_in(client, username="analyst", password=PASSWORD, next_url=None):
    data = {"username": username, "password": password, "csrf_token": login_form_token(client)}
    if next_url is not None:
        data["next"] = next_url
    return client.post("/login/", data=data)


@pytest.fixture
def user(app):
    account = User(username="analyst")
    account.set_password(PASSWORD)
    db.session.add(account)
    db.session.commit()
    return account


@pytest.fixture
def logged_in(client, user):
    answer = log_in(client)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return client


@pytest.fixture
def scene(app):
    """A finished file with one analysis carrying findings, a recommendation and a live refer session."""
    file = File(id=secrets.token_urlsafe(24), state=File.COMPLETE, length=11, offset=11, filename="script.txt",
                content_type="text/plain", sha256="0" * 64)
    violation = BasisViolation(code="violence", name="Насилие", name_en="Violence", age_marks="12+ / 16+",
                               age_min="12+", age_max="16+")
    db.session.add_all([file, violation])
    db.session.flush()
    analysis = Analysis(file_id=file.id, status=Analysis.PROCESSING, target_audience="12+", title="Night Train",
                        suggested_age_rating="16+")
    db.session.add(analysis)
    db.session.flush()
    db.session.add(Comment(analysis_id=analysis.id, author=Comment.AI, text="a fight in scene 3",
                           violation_id=violation.id, severity="severe", count=2, location="scene 3",
                           quote="He hits him."))
    recommendation = Recommendation(analysis_id=analysis.id, text="Rate it 16+.", rating="severe", age_rating="16+")
    recommendation.counts.append(ViolationCount(violation_id=violation.id, count=2, severity="severe"))
    db.session.add(recommendation)
    now = time.time()
    session = ReferSession(analysis_id=analysis.id, state=ReferSession.LIVE, started_at=now, ends_at=now + 600,
                           next_rotation_at=now + 90, handoff_state=ReferSession.HANDOFF_PENDING)
    db.session.add(session)
    db.session.flush()
    key_text = secrets.token_urlsafe(24)
    key = ReferKey(session_id=session.id, key=key_text, key_hash=secrets.token_hex(32), issued_at=now)
    db.session.add(key)
    db.session.flush()
    session.current_key_id = key.id
    db.session.commit()
    return {"file": file, "analysis": analysis, "violation": violation, "key": key_text, "session": session}


# -- not logged in ------------------------------------------------------------------------------------------
def test_everything_redirects_to_login_when_anonymous(client, scene):
    urls = ["/admin/", "/cms/", f"/cms/analyses/{scene['analysis'].id}/"]
    urls += [f"/admin/{slug}/" for slug in MODEL_SLUGS]
    urls += [f"/admin/basisviolation/edit/?id={scene['violation'].id}", "/admin/user/new/"]
    for url in urls:
        answer = client.get(url)
        assert answer.status_code == 302, url
        assert answer.headers["Location"].startswith("/login/?next="), url
        assert scene["file"].filename not in answer.get_data(as_text=True)
    assert client.get("/cms/status.json", headers={"Accept": "application/json"}).status_code == 401


def test_anonymous_posts_change_nothing(client, scene):
    violation = scene["violation"]
    answer = client.post(f"/admin/basisviolation/edit/?id={violation.id}",
                         data={"code": "x", "name": "changed", "name_en": "", "context": "", "age_marks": "",
                               "age_min": "", "age_max": "", "marks": ""})
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login/")
    db.session.expire_all()
    assert db.session.get(BasisViolation, violation.id).name == "Насилие"


# -- login ----------------------------------------------------------------------------------------------------
def test_wrong_user_and_wrong_password_get_the_same_answer(client, user):
    wrong_password = log_in(client, password="nope")
    wrong_user = log_in(client, username="nobody")
    assert wrong_password.status_code == wrong_user.status_code == 401
    for answer in (wrong_password, wrong_user):
        assert "wrong username or password" in answer.get_data(as_text=True)
    assert client.get("/cms/").status_code == 302


def test_an_unknown_user_costs_a_password_check_too(client, user, monkeypatch):
    import werkzeug.security
    calls = []
    real = werkzeug.security.check_password_hash
    monkeypatch.setattr(werkzeug.security, "check_password_hash", lambda *a: calls.append(1) or real(*a))
    log_in(client, username="nobody", password="nope")
    log_in(client, username="analyst", password="nope")
    assert len(calls) == 2


def test_sixth_failed_attempt_is_429_with_retry_after(client, user):
    for _ in range(5):
        assert log_in(client, password="nope").status_code == 401
    answer = log_in(client, password="nope")
    assert answer.status_code == 429
    assert int(answer.headers["Retry-After"]) > 0
    assert "too many failed logins" in answer.get_data(as_text=True)
    # Even the right password waits: the check is not made at all.
    assert log_in(client).status_code == 429


def test_the_wait_grows_with_each_further_failure(client, user, redis_client):
    for _ in range(5):
        log_in(client, password="nope")
    first = int(log_in(client, password="nope").headers["Retry-After"])
    for key in redis_client.keys("login:fail:*"):  # as if the wait had passed
        redis_client.hset(key, "last", repr(time.time() - first - 1))
    assert log_in(client, password="nope").status_code == 401
    second = int(log_in(client, password="nope").headers["Retry-After"])
    assert second > first


def test_success_clears_the_username_counter(client, user, redis_client):
    for _ in range(4):
        assert log_in(client, password="nope").status_code == 401
    assert log_in(client).status_code == 302
    client.post("/logout/", data={"csrf_token": csrf_from(client.get("/cms/").get_data(as_text=True))})
    for _ in range(4):  # four more: the username counter started again from zero
        assert log_in(client, password="nope").status_code == 401


def test_login_needs_the_csrf_token(client, user):
    client.get("/login/")
    missing = client.post("/login/", data={"username": "analyst", "password": PASSWORD})
    assert missing.status_code == 400
    wrong = client.post("/login/", data={"username": "analyst", "password": PASSWORD, "csrf_token": "forged"})
    assert wrong.status_code == 400
    assert client.get("/cms/").status_code == 302
    good = log_in(client)
    assert good.status_code == 302
    assert client.get("/cms/").status_code == 200


@pytest.mark.parametrize("target, expected", [
    ("/admin/user/", "/admin/user/"),
    ("/cms/?status=error", "/cms/?status=error"),
    ("https://evil.example/", "/cms/"),
    ("//evil.example/", "/cms/"),
    ("/\\evil.example/", "/cms/"),
    ("javascript:alert(1)", "/cms/"),
])
def test_next_is_a_local_path_only(client, user, target, expected):
    answer = log_in(client, next_url=target)
    assert answer.status_code == 302
    assert answer.headers["Location"] == expected


def test_logout_needs_post_with_csrf(logged_in):
    assert logged_in.get("/logout/").status_code == 405
    assert logged_in.post("/logout/").status_code == 400
    assert logged_in.get("/cms/").status_code == 200
    token = csrf_from(logged_in.get("/cms/").get_data(as_text=True))
    assert logged_in.post("/logout/", data={"csrf_token": token}).status_code == 302
    assert logged_in.get("/cms/").status_code == 302


def test_password_change_ends_open_sessions(logged_in, user):
    user.set_password("another password")
    db.session.commit()
    assert logged_in.get("/cms/").status_code == 302


# -- /admin/ ------------------------------------------------------------------------------------------------
def test_every_list_page_answers_without_secrets(logged_in, scene, user):
    for slug in MODEL_SLUGS:
        answer = logged_in.get(f"/admin/{slug}/")
        assert answer.status_code == 200, slug
        page = answer.get_data(as_text=True)
        assert scene["key"] not in page, slug
        assert user.password_hash not in page, slug
        assert "password_hash" not in page.lower().replace(" ", "_"), slug
    keys = logged_in.get("/admin/referkey/").get_data(as_text=True)
    assert str(scene["session"].id) in keys
    for url in (f"/admin/user/edit/?id={user.id}", f"/admin/user/details/?id={user.id}",
                f"/admin/refersession/details/?id={scene['session'].id}", "/admin/"):
        page = logged_in.get(url).get_data(as_text=True)
        assert user.password_hash not in page and scene["key"] not in page, url
    assert logged_in.get("/admin/referkey/export/csv/").status_code != 200


def test_admin_pages_use_no_outside_assets(logged_in, scene):
    for url in ("/admin/", "/admin/analysis/", f"/admin/basisviolation/edit/?id={scene['violation'].id}",
                "/cms/", f"/cms/analyses/{scene['analysis'].id}/"):
        page = logged_in.get(url).get_data(as_text=True)
        assert not re.search(r'(src|href)="(https?:)?//', page), url


def test_editing_a_catalog_entry_marks_it_edited(logged_in, scene):
    violation = scene["violation"]
    url = f"/admin/basisviolation/edit/?id={violation.id}"
    form = logged_in.get(url)
    assert form.status_code == 200
    data = {"code": "violence", "name": "Насилие (уточнено)", "name_en": "Violence", "context": "edited",
            "age_marks": "12+ / 16+", "age_min": "12+", "age_max": "18+", "marks": "",
            "csrf_token": csrf_from(form.get_data(as_text=True))}
    assert logged_in.post(url, data={k: v for k, v in data.items() if k != "csrf_token"}).status_code == 400
    answer = logged_in.post(url, data=data)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    db.session.expire_all()
    saved = db.session.get(BasisViolation, violation.id)
    assert saved.edited is True
    assert saved.name == "Насилие (уточнено)" and saved.age_max == "18+"


def test_user_form_sets_a_hashed_password(logged_in, app):
    form = logged_in.get("/admin/user/new/")
    assert form.status_code == 200
    token = csrf_from(form.get_data(as_text=True))
    answer = logged_in.post("/admin/user/new/", data={"username": "second", "new_password": "another secret",
                                                      "csrf_token": token})
    assert answer.status_code == 302
    created = db.session.scalar(select(User).where(User.username == "second"))
    assert created is not None and created.password_hash != "another secret"
    assert created.check_password("another secret")


def _action(client, slug, action, ids):
    page = client.get(f"/admin/{slug}/")
    token = csrf_from(page.get_data(as_text=True))
    return client.post(f"/admin/{slug}/action/", data={"action": action, "rowid": [str(i) for i in ids],
                                                       "csrf_token": token}, follow_redirects=True)


def test_restart_action_starts_a_fresh_live_session(logged_in, scene):
    analysis = scene["analysis"]
    db.session.execute(ReferSession.__table__.update().values(state=ReferSession.EXPIRED))
    analysis.status, analysis.reason = Analysis.ERROR, "refer expired"
    db.session.commit()
    before = scene["session"].id
    answer = _action(logged_in, "analysis", "restart", [analysis.id])
    assert answer.status_code == 200
    assert "Refer session restarted" in answer.get_data(as_text=True)
    db.session.expire_all()
    sessions = db.session.scalars(select(ReferSession).where(ReferSession.analysis_id == analysis.id)
                                  .order_by(ReferSession.id)).all()
    assert len(sessions) == 2 and sessions[-1].id != before
    assert sessions[-1].state == ReferSession.LIVE
    assert db.session.get(Analysis, analysis.id).status == Analysis.PROCESSING


def test_restart_action_explains_a_refusal(logged_in, scene):
    answer = _action(logged_in, "analysis", "restart", [scene["analysis"].id])
    assert "only one in error can be restarted" in answer.get_data(as_text=True)


def test_retry_handoff_action_requeues_a_pending_handoff(logged_in, scene, redis_client):
    session = scene["session"]
    session.handoff_next_at = time.time() + 3600
    db.session.commit()
    answer = _action(logged_in, "analysis", "retry_handoff", [scene["analysis"].id])
    assert "Hand-off queued again" in answer.get_data(as_text=True)
    db.session.expire_all()
    fresh = db.session.get(ReferSession, session.id)
    assert fresh.handoff_state == ReferSession.HANDOFF_PENDING and fresh.handoff_next_at <= time.time()
    assert redis_client.llen("rq:queue:handoff") == 1


def test_action_without_csrf_is_refused(logged_in, scene):
    answer = logged_in.post("/admin/analysis/action/", data={"action": "restart",
                                                              "rowid": [str(scene["analysis"].id)]})
    assert answer.status_code == 400


def test_cms_restart_button_needs_csrf(logged_in, scene):
    analysis = scene["analysis"]
    db.session.execute(ReferSession.__table__.update().values(state=ReferSession.EXPIRED))
    analysis.status, analysis.reason = Analysis.ERROR, "refer expired"
    db.session.commit()
    url = f"/cms/analyses/{analysis.id}/restart/"
    assert logged_in.post(url).status_code == 400
    page = logged_in.get(f"/cms/analyses/{analysis.id}/").get_data(as_text=True)
    assert url in page
    answer = logged_in.post(url, data={"csrf_token": csrf_from(page)}, follow_redirects=True)
    assert "A fresh refer session was started" in answer.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Analysis, analysis.id).status == Analysis.PROCESSING


# -- /cms/ ------------------------------------------------------------------------------------------------------
def test_dashboard_lists_files_and_analyses(logged_in, scene):
    page = logged_in.get("/cms/").get_data(as_text=True)
    assert "script.txt" in page and "Night Train" in page
    assert f'data-analysis-id="{scene["analysis"].id}"' in page
    assert scene["key"] not in page
    status = logged_in.get(f"/cms/status.json?file={scene['file'].id}").get_json()
    assert status["analyses"][str(scene["analysis"].id)]["status"] == Analysis.PROCESSING


def test_analysis_page_shows_findings_chart_and_ratings(logged_in, scene):
    answer = logged_in.get(f"/cms/analyses/{scene['analysis'].id}/")
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert 'id="findings-chart-container"' in page and '<canvas id="findings-chart"' in page
    assert "Насилие" in page and "Rate it 16+." in page and "a fight in scene 3" in page
    assert "above the target 12+" in page
    chart_src = re.search(r'<script src="([^"]*chart\.umd\.js[^"]*)"', page).group(1)
    asset = logged_in.get(chart_src)
    assert asset.status_code == 200
    assert asset.mimetype in ("text/javascript", "application/javascript")
    assert b"Chart" in asset.get_data()[:2000] or b"chart" in asset.get_data()[:2000]
    assert logged_in.get("/cms/analyses/999999/").status_code == 404


def test_result_link_when_the_result_is_stored(logged_in, scene):
    analysis = scene["analysis"]
    analysis.result_key, analysis.result_filename, analysis.status = "k" * 43, "report.pdf", Analysis.READY
    db.session.commit()
    page = logged_in.get(f"/cms/analyses/{analysis.id}/").get_data(as_text=True)
    assert f'href="/results/{"k" * 43}/"' in page


def test_login_and_dashboard_through_the_real_server(live_server, user):
    """As a browser would, through gunicorn as in the Procfile: cookies, CSRF, redirects, the Chart.js asset."""
    import requests
    browser = requests.Session()
    form = browser.get(live_server.url + "/cms/")
    assert form.url.startswith(live_server.url + "/login/?next=")
    answer = browser.post(live_server.url + "/login/", data={
        "username": "analyst", "password": PASSWORD, "csrf_token": csrf_from(form.text), "next": "/cms/"})
    assert answer.status_code == 200 and answer.url == live_server.url + "/cms/"
    assert "Files and analyses" in answer.text
    asset = browser.get(live_server.url + "/cms/vendor/chart.umd.js")
    assert asset.status_code == 200 and "javascript" in asset.headers["Content-Type"]
    assert browser.get(live_server.url + "/admin/user/").status_code == 200
