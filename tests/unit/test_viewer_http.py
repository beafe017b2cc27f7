"""The generic HTTP adapter's templates and token sources: rendering, config errors
that name the field, and tokens that never show up where they should not."""

from __future__ import annotations

from pathlib import Path

import pytest

from canarywatch.viewer.http import AdapterConfigError, RequestTemplate, TokenSource

WHERE = "integration.viewer.snapshot"
SECRET = "s3cr3t-T0ken/+="


def template(**overrides: object) -> RequestTemplate:
    settings: dict[str, object] = {
        "url": "https://relay.example/v3/devices/{tenant}/{camera}/live.jpg",
        "headers": {"Authorization": "Bearer {token}", "X-Tenant": "{tenant}"},
    }
    settings.update(overrides)
    return RequestTemplate.from_mapping(settings, where=WHERE)


def test_render_quotes_values_in_the_url_but_not_in_headers() -> None:
    rendered = template().render(tenant="acme", camera="front door/2", token=SECRET)
    assert rendered.method == "GET"
    assert rendered.url == "https://relay.example/v3/devices/acme/front%20door%2F2/live.jpg"
    assert rendered.headers == {"Authorization": f"Bearer {SECRET}", "X-Tenant": "acme"}
    assert rendered.body is None
    assert (rendered.tenant, rendered.camera) == ("acme", "front door/2")


def test_token_in_the_query_is_quoted_and_left_out_of_the_source() -> None:
    rendered = template(url="https://cam.example/snap/{camera}?access_token={token}&w=640").render(
        tenant="acme", camera="door", token=SECRET
    )
    assert rendered.url == "https://cam.example/snap/door?access_token=s3cr3t-T0ken%2F%2B%3D&w=640"
    assert rendered.source == "/snap/door"


def test_token_in_the_path_is_redacted_in_the_source() -> None:
    rendered = template(url="https://cam.example/{token}/{tenant}/live.jpg").render(
        tenant="acme", camera="door", token=SECRET
    )
    assert rendered.source == "/***/acme/live.jpg"


def test_body_is_substituted_and_other_braces_are_literal() -> None:
    rendered = template(
        method="post", body='{"tenant": "{tenant}", "camera": "{camera}", "opts": {"w": 1}}'
    ).render(tenant="acme", camera="door", token=SECRET)
    assert rendered.method == "POST"
    assert rendered.body == b'{"tenant": "acme", "camera": "door", "opts": {"w": 1}}'


def test_a_value_that_looks_like_a_placeholder_is_not_expanded_again() -> None:
    rendered = template().render(tenant="{token}", camera="door", token=SECRET)
    assert rendered.headers["X-Tenant"] == "{token}"
    assert SECRET not in rendered.url


def test_a_bare_string_is_a_get_of_that_url() -> None:
    parsed = RequestTemplate.from_mapping("http://relay:8080/v3/events", where=WHERE)
    assert parsed == RequestTemplate(url="http://relay:8080/v3/events")


@pytest.mark.parametrize(
    ("settings", "field", "says"),
    [
        ({"url": "https://x/{tenat}/{cam}"}, f"{WHERE}.url", "unknown placeholder {cam}, {tenat}"),
        ({"url": "https://x/{tenat}"}, f"{WHERE}.url", "accepted: {camera}, {tenant}, {token}"),
        ({"headers": {"Authorization": "Bearer {secret}"}}, f"{WHERE}.headers.Authorization", "{secret}"),
        ({"body": "{tenantid}"}, f"{WHERE}.body", "{tenantid}"),
        ({"url": "ftp://x/{tenant}"}, f"{WHERE}.url", "http/https URL"),
        ({"url": "/relative/{tenant}"}, f"{WHERE}.url", "http/https URL"),
        ({"url": 7}, f"{WHERE}.url", "string"),
        ({"method": "GE T"}, f"{WHERE}.method", "HTTP method"),
        ({"headers": ["Authorization"]}, f"{WHERE}.headers", "mapping"),
        ({"headers": {"Bad Name": "x"}}, f"{WHERE}.headers", "header name"),
        ({"headers": {"X-A": 1}}, f"{WHERE}.headers.X-A", "string"),
        ({"headers": {"X-A": "a\r\nX-Evil: 1"}}, f"{WHERE}.headers.X-A", "line breaks"),
        ({"hedaers": {}}, f"{WHERE}.hedaers", "accepted: method, url, headers, body"),
    ],
)
def test_template_errors_name_the_field(settings: dict[str, object], field: str, says: str) -> None:
    with pytest.raises(AdapterConfigError) as caught:
        template(**settings)
    assert caught.value.field == field
    assert says in str(caught.value)


def test_missing_url_is_required() -> None:
    with pytest.raises(AdapterConfigError, match=rf"^{WHERE}\.url: required"):
        RequestTemplate.from_mapping({"method": "GET"}, where=WHERE)


def test_render_refuses_header_injection_without_showing_the_token() -> None:
    with pytest.raises(AdapterConfigError) as caught:
        template().render(tenant="acme", camera="door", token=f"{SECRET}\r\nX-Evil: 1")
    assert "token" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_reprs_never_show_credentials() -> None:
    literal = template(
        url="https://user:pw@cam.example/snap?key=LITERALKEY",
        headers={"Authorization": "Bearer LITERALTOKEN"},
        body="LITERALBODY",
    )
    rendered = template(url="https://cam.example/{token}?k={token}").render(
        tenant="a", camera="b", token=SECRET
    )
    shown = repr(literal) + repr(rendered) + repr(TokenSource(literal=SECRET))
    for secret in ("LITERALKEY", "LITERALTOKEN", "LITERALBODY", "pw@", SECRET, "s3cr3t"):
        assert secret not in shown
    assert "cam.example/snap" in repr(literal)


# -- token sources ---------------------------------------------------------------------


def test_literal_env_and_file_sources(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text(f"{SECRET}\n")  # as Secret volumes and `echo` leave it
    assert TokenSource.from_value(SECRET, where="t").resolve() == SECRET
    assert TokenSource.from_value({"env": "CW_TOKEN"}, where="t").resolve({"CW_TOKEN": SECRET}) == SECRET
    assert TokenSource.from_value({"file": str(secret_file)}, where="t").resolve() == SECRET


def test_a_rotated_secret_file_is_read_again(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("old")
    source = TokenSource(file=str(secret_file))
    assert source.resolve() == "old"
    secret_file.write_text("new")
    assert source.resolve() == "new"


def test_unset_env_names_the_field_and_the_variable() -> None:
    source = TokenSource.from_value({"env": "CW_TOKEN"}, where="probe.tenants[1].token")
    with pytest.raises(AdapterConfigError) as caught:
        source.resolve({"OTHER": SECRET})
    assert caught.value.field == "probe.tenants[1].token.env"
    assert "CW_TOKEN" in str(caught.value)


@pytest.mark.parametrize("content", [None, "", "  \n"])
def test_unreadable_or_empty_file_names_the_field_and_path(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    with pytest.raises(AdapterConfigError) as caught:
        TokenSource(file=str(path), where="t").resolve()
    assert caught.value.field == "t.file"
    assert str(path) in str(caught.value)


def test_a_file_token_with_a_line_break_inside_is_refused_without_showing_it(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"{SECRET}\nX-Evil: 1")
    with pytest.raises(AdapterConfigError) as caught:
        TokenSource(file=str(path), where="t").resolve()
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ({"env": "A", "file": "/b"}, "got keys ['env', 'file']"),
        ({"value": SECRET}, "got keys ['value']"),
        ({"env": 5}, "string"),
        (12345, "token string"),
        ("", "non-empty"),
    ],
)
def test_bad_token_config_names_the_field_and_never_echoes_values(value: object, says: str) -> None:
    with pytest.raises(AdapterConfigError) as caught:
        TokenSource.from_value(value, where="integration.tenants.acme.token")
    assert caught.value.field.startswith("integration.tenants.acme.token")
    assert says in str(caught.value)
    assert SECRET not in str(caught.value)
    assert "12345" not in str(caught.value)


def test_exactly_one_source_is_required() -> None:
    with pytest.raises(AdapterConfigError, match="exactly one"):
        TokenSource()
    with pytest.raises(AdapterConfigError, match="exactly one"):
        TokenSource(literal=SECRET, env="X")
