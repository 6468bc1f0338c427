"""API documentation: /swagger/ (flasgger's Swagger UI), /redoc/, /swagger.json and /swagger.yaml.

Everything is served from this machine (the gateway runs offline), the spec is valid OpenAPI 3.0, JSON and YAML
say the same, every API route is documented with request and response schemas, and nothing secret leaks.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
import yaml

from gateway.api import docs

# Routes of gateway.api that are pages and assets, not API: the uploader's page and its vendored scripts.
NOT_API_MODULES = {"gateway.api.docs", "gateway.api.pages"}
# Methods a route accepts only to refuse them by protocol (tus answers 405 with Allow): not operations.
REFUSED = {"/files/": {"GET", "HEAD", "PATCH", "DELETE"}, "/files/{}/": {"GET", "POST"}}
TUS_STATUSES = {"200", "201", "204", "400", "403", "404", "409", "410", "412", "413", "415", "423", "460"}
SSE_EVENTS = ("snapshot", "upload", "status", "refer", "downloading", "ready", "comment")
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


class Resources(HTMLParser):
    """Every URL a page makes the browser load: scripts, stylesheets, icons, images, frames."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "embed") and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])
        if tag == "redoc" and attrs.get("spec-url"):
            self.urls.append(attrs["spec-url"])


def loaded_urls(html: str) -> list[str]:
    parser = Resources()
    parser.feed(html)
    return parser.urls


def assert_local(html: str) -> list[str]:
    urls = loaded_urls(html)
    assert urls
    for url in urls:
        parts = urlsplit(url)
        assert not parts.netloc and not parts.scheme, f"{url} is loaded from another host"
    # nor hidden in inline CSS (web fonts, CDNs); plain links (<a href>) load nothing and may point anywhere
    assert not re.search(r"url\(\s*[\"']?(?:https?:)?//", html) and "@import" not in html
    assert "fonts.googleapis" not in html and "cdn" not in html.lower()
    return urls


def spec_of(client) -> dict:
    answer = client.get("/swagger.json")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    return answer.get_json()


def normalized(path: str) -> str:
    """`/cinema/<int:analysis_id>/` and `/cinema/{analysis_id}/` alike become `/cinema/{}/`."""
    path = re.sub(r"<[^>]+>", "{}", path)
    return re.sub(r"\{[^}]*\}", "{}", path)


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def resolve(spec: dict, node: dict) -> dict:
    while "$ref" in node:
        target = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


# -- the pages -----------------------------------------------------------------------------------------
def test_swagger_ui_is_served_from_this_machine(client):
    page = client.get("/swagger/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    urls = assert_local(html)
    assert any(url.endswith("swagger-ui-bundle.js") for url in urls)
    assert any(url.endswith("swagger-ui.css") for url in urls)
    assert "/swagger.json" in html  # the UI reads our spec
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.data, url
    # and the browser is told to load nothing from elsewhere
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "http" not in policy.replace("http://localhost", "")


def test_redoc_is_served_from_node_modules(client):
    if not docs.REDOC_BUNDLE.is_file():
        pytest.fail(f"{docs.REDOC_BUNDLE} is missing: run `make test` (it runs `npm install`)")
    page = client.get("/redoc/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    urls = assert_local(html)
    assert "/swagger.json" in urls and "/redoc/redoc.standalone.js" in urls
    bundle = client.get("/redoc/redoc.standalone.js")
    assert bundle.status_code == 200 and bundle.mimetype == "text/javascript"
    assert bundle.data == docs.REDOC_BUNDLE.read_bytes()
    # ReDoc's bundle names one image on a CDN (its logo): the page's policy keeps the browser from fetching it
    policy = page.headers["Content-Security-Policy"]
    assert "img-src 'self' data:" in policy and "connect-src 'self'" in policy


def test_redoc_without_node_modules_says_what_to_do(client, monkeypatch, tmp_path):
    monkeypatch.setattr(docs, "REDOC_BUNDLE", tmp_path / "node_modules" / "redoc" / "bundles" / "redoc.standalone.js")
    for path in ("/redoc/", "/redoc/redoc.standalone.js"):
        answer = client.get(path)
        assert answer.status_code == 503, path
        assert "npm install" in answer.get_data(as_text=True)
    assert client.get("/swagger/").status_code == 200  # Swagger UI does not need node_modules


# -- the spec --------------------------------------------------------------------------------------------
def test_spec_is_valid_openapi(client):
    from openapi_spec_validator import validate
    spec = spec_of(client)
    assert spec["openapi"].startswith("3.0.")
    validate(spec)
    validate(yaml.safe_load(docs.SPEC_FILE.read_text()))  # the file itself, before servers are added
    # and schemathesis (which tests the live server against it) reads every operation without error
    import schemathesis
    from schemathesis.core.result import Err
    loaded = schemathesis.openapi.from_dict(spec)
    problems = [str(result.err()) for result in loaded.get_all_operations() if isinstance(result, Err)]
    assert not problems, problems


def test_json_and_yaml_are_the_same_spec(client):
    as_json = spec_of(client)
    answer = client.get("/swagger.yaml")
    assert answer.status_code == 200 and answer.mimetype == "application/yaml"
    assert yaml.safe_load(answer.get_data(as_text=True)) == as_json
    assert as_json["servers"] == [{"url": "http://localhost", "description": "This gateway"}]


def test_servers_name_the_public_address(settings, tmp_path):
    from gateway import create_app

    behind_proxy = create_app(settings.with_overrides(trust_proxy=1, instance_dir=tmp_path / "proxied"))
    client = behind_proxy.test_client()
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "films.example.org", "X-Forwarded-Prefix": "/gw"}
    assert client.get("/swagger.json", headers=headers).get_json()["servers"][0]["url"] == \
        "https://films.example.org/gw"
    page = client.get("/swagger/", headers=headers).get_data(as_text=True)
    assert "/gw/swagger.json" in page and "/gw/flasgger_static/swagger-ui-bundle.js" in page
    assert 'spec-url="/gw/swagger.json"' in client.get("/redoc/", headers=headers).get_data(as_text=True)

    public = create_app(settings.with_overrides(public_url="https://api.example.org", instance_dir=tmp_path / "pub"))
    assert public.test_client().get("/swagger.yaml").get_data(as_text=True).count("https://api.example.org") == 1
    for made in (behind_proxy, public):
        with made.app_context():
            from gateway.extensions import db
            db.engine.dispose()


def test_every_api_route_is_documented(app, client):
    spec = spec_of(client)
    documented = {normalized(path): {method.upper() for method in item if method in HTTP_METHODS}
                  for path, item in spec["paths"].items()}
    routed: dict[str, set[str]] = {}
    all_paths = {normalized(rule.rule) for rule in app.url_map.iter_rules()}
    for rule in app.url_map.iter_rules():
        module = app.view_functions[rule.endpoint].__module__
        if not module.startswith("gateway.api.") or module in NOT_API_MODULES:
            continue
        path = normalized(rule.rule)
        if not path.endswith("/") and path + "/" in all_paths:
            continue  # `/files` and `/files/<id>`: the slashless aliases tus clients use (said in the spec)
        routed.setdefault(path, set()).update(rule.methods)
    assert routed, "no API route found"
    missing = []
    for path, methods in routed.items():
        # HEAD and OPTIONS are Flask's own on most routes; where they are the API's (tus, downloads) they are
        # checked below
        wanted = methods - {"HEAD", "OPTIONS"} - REFUSED.get(path, set())
        for method in sorted(wanted - documented.get(path, set())):
            missing.append(f"{method} {path}")
    assert not missing, f"API routes missing from the spec: {missing}"
    assert {"OPTIONS", "POST"} <= documented["/files/"]
    assert {"OPTIONS", "HEAD", "PATCH", "DELETE"} <= documented["/files/{}/"]
    assert {"GET", "HEAD", "POST"} <= documented["/download/{}/"]
    # and nothing is documented that the app does not route
    assert set(documented) <= set(routed), set(documented) - set(routed)
    for path, methods in documented.items():
        assert methods <= routed[path] | {"HEAD", "OPTIONS"}, (path, methods - routed[path])


def test_every_operation_has_request_and_response_schemas(client):
    spec = spec_of(client)
    seen_ids = set()
    for path, method, operation in operations(spec):
        label = f"{method.upper()} {path}"
        assert operation.get("operationId") and operation["operationId"] not in seen_ids, label
        seen_ids.add(operation["operationId"])
        assert operation.get("summary") and operation.get("tags"), label
        responses = operation["responses"]
        assert any(code.startswith("2") for code in responses), label
        assert "default" not in responses, label  # every status is named
        for code, response in responses.items():
            response = resolve(spec, response)
            assert response.get("description"), (label, code)
            for media_type, content in response.get("content", {}).items():
                assert "schema" in content, (label, code, media_type)
        if "requestBody" in operation:
            for media_type, content in operation["requestBody"]["content"].items():
                assert "schema" in content, (label, media_type)
        for parameter in operation.get("parameters", []):
            parameter = resolve(spec, parameter)
            assert "schema" in parameter, (label, parameter["name"])
        for code, response in responses.items():  # every success with a body describes it (tus has none)
            if code.startswith("2") and code != "204" and method not in ("head", "options") \
                    and not path.startswith("/files/"):
                assert resolve(spec, response).get("content"), (label, code)


def test_tus_and_event_streams_are_fully_described(client):
    spec = spec_of(client)
    tus_statuses = set()
    for path, method, operation in operations(spec):
        if path.startswith("/files/"):
            tus_statuses |= set(operation["responses"])
            names = {resolve(spec, p)["name"] for p in operation.get("parameters", [])}
            if method != "options":
                assert "Tus-Resumable" in names, f"{method} {path}"
    assert TUS_STATUSES <= tus_statuses, TUS_STATUSES - tus_statuses
    created = resolve(spec, spec["paths"]["/files/"]["post"]["responses"]["201"])
    assert created["headers"]["Location"]["required"]
    head = spec["paths"]["/files/{upload_id}/"]["head"]["responses"]["200"]["headers"]
    assert {"Upload-Offset", "Upload-Length", "Upload-Defer-Length", "Upload-Expires", "Cache-Control"} <= set(head)
    options = resolve(spec, spec["paths"]["/files/"]["options"]["responses"]["204"])
    assert {"Tus-Version", "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm"} <= set(options["headers"])

    for path in ("/events/{file_id}/", "/download/{refer}/"):
        stream = spec["paths"][path]["get"]["responses"]["200"]["content"]["text/event-stream"]["schema"]
        stream = resolve(spec, stream)
        assert set(stream["properties"]["event"]["enum"]) == set(SSE_EVENTS)
    description = spec["paths"]["/events/{file_id}/"]["get"]["description"]
    for event in SSE_EVENTS:
        assert f"`{event}`" in description, event
    download = spec["paths"]["/download/{refer}/"]
    assert {"206", "410", "416"} <= set(download["get"]["responses"])
    assert {"Range"} <= {resolve(spec, p)["name"] for p in download["get"]["parameters"]}
    assert {"multipart/form-data", "application/octet-stream"} <= set(download["post"]["requestBody"]["content"])


def test_security_schemes_and_auth_are_declared(client):
    spec = spec_of(client)
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["csrfToken"]["in"] == "header" and schemes["csrfToken"]["name"] == "X-CSRFToken"
    for path, method in (("/recommend/", "post"), ("/download/{refer}/", "post"), ("/cinema/{analysis_id}/error/", "post")):
        assert spec["paths"][path][method]["security"] == [{"bearerAuth": []}], path
    for path in ("/cinema/", "/comments/", "/cinema/{analysis_id}/refer/"):
        assert {"csrfToken": [], "sessionCookie": []} in spec["paths"][path]["post"]["security"], path


def test_the_docs_leak_no_secret(client, settings):
    secrets = [settings.analyzer_token, settings.secret_key]
    bearer = {"Authorization": f"Bearer {settings.analyzer_token}"}
    for path in ("/swagger.json", "/swagger.yaml", "/swagger/", "/redoc/", "/swagger/?json=1"):
        for headers in ({}, bearer):
            text = client.get(path, headers=headers).get_data(as_text=True)
            for secret in secrets:
                assert secret not in text, path
    assert "Bearer <ANALYZER_TOKEN>" in client.get("/swagger.json").get_data(as_text=True)
