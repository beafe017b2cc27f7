"""``resigned``: a Digest ``Authorization`` signed again for another Request-URI, checked
against RFC 7616's (and RFC 2617's) published examples and a digest computed here."""

from __future__ import annotations

import hashlib

import pytest

from canarywatch.viewer.network.rtsp_digest import DigestCredentials, digest_uri, resigned

MUFASA = DigestCredentials("Mufasa", "Circle of Life")
# RFC 7616 §3.9.1, signed for another uri: resigned for /dir/index.html gives the RFC's response
RFC7616 = (
    'Digest username="Mufasa", realm="http-auth@example.org", uri="rtsp://127.0.0.1:40123/dir", '
    'algorithm={algorithm}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, '
    'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="00", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc_7616_examples(algorithm: str, response: str) -> None:
    header = RFC7616.format(algorithm=algorithm)
    signed = resigned(header, method="GET", uri="/dir/index.html", credentials=MUFASA)
    assert signed == header.replace('"rtsp://127.0.0.1:40123/dir"', '"/dir/index.html"').replace(
        'response="00"', f'response="{response}"'
    )


def test_rfc_2617_example_without_an_algorithm_is_md5() -> None:
    header = (
        'Digest username="Mufasa",realm="testrealm@host.com",nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",'
        'uri="/x",qop=auth,nc=00000001,cnonce="0a4f113b",response="x",opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    signed = resigned(
        header, method="GET", uri="/dir/index.html", credentials=DigestCredentials("Mufasa", "Circle Of Life")
    )
    assert signed is not None and 'response="6629fae49393a05397450978507c4ef1"' in signed
    assert 'uri="/dir/index.html"' in signed and signed.startswith('Digest username="Mufasa",realm=')


def independent(algorithm: str, qop: str | None, uri: str) -> str:
    """The response as RFC 7616 §3.4.1 defines it, computed without the code under test."""
    name = "sha256" if algorithm.startswith("SHA-256") else "md5"

    def h(text: str) -> str:
        return hashlib.new(name, text.encode()).hexdigest()

    ha1 = h("acme:cams:t-acme:1")
    if algorithm.endswith("-sess"):
        ha1 = h(f"{ha1}:n0nce:c0nce")
    ha2 = h(f"DESCRIBE:{uri}")
    return h(f"{ha1}:n0nce:00000002:c0nce:auth:{ha2}" if qop else f"{ha1}:n0nce:{ha2}")


@pytest.mark.parametrize("algorithm", ["MD5", "MD5-sess", "SHA-256", "SHA-256-sess"])
@pytest.mark.parametrize("qop", ["auth", None])
def test_each_algorithm_with_and_without_qop(algorithm: str, qop: str | None) -> None:
    extra = ', qop="auth", nc=00000002' if qop else ""
    header = (
        f'Digest username="acme", realm="cams", nonce="n0nce", uri="rtsp://127.0.0.1:1/acme/0", '
        f'response="ffff", algorithm="{algorithm}", cnonce="c0nce"{extra}'
    )
    uri = "rtsps://cams.example:322/acme/0"
    signed = resigned(header, method="DESCRIBE", uri=uri, credentials=DigestCredentials("acme", "t-acme:1"))
    assert signed == header.replace("rtsp://127.0.0.1:1/acme/0", uri).replace(
        '"ffff"', f'"{independent(algorithm, qop, uri)}"'
    )
    assert digest_uri(header) == "rtsp://127.0.0.1:1/acme/0"


@pytest.mark.parametrize(
    "header",
    [
        "Basic YWNtZTp0LWFjbWU=",
        'Digest username="acme", realm="r", nonce="n", uri="/a", response="0", algorithm=SHA-1',  # unknown
        'Digest username="acme", realm="r", nonce="n", uri="/a", response="0", qop=auth-int, nc=1, cnonce=c',
        'Digest username="other", realm="r", nonce="n", uri="/a", response="0"',  # not the relay's user
        'Digest username="x", realm="r", nonce="n", uri="/a", response="0", userhash=true',
        'Digest username="acme", realm="r", nonce="n", uri="/a", response="0", qop=auth',  # no nc/cnonce
        'Digest username="acme", realm="r", nonce="n", response="0"',  # no uri
        'Digest username="acme", realm="r", nonce="n", uri="/a", response="0" garbage',
    ],
)
def test_what_it_cannot_sign_for_sure_is_not_signed(header: str) -> None:
    assert resigned(header, method="DESCRIBE", uri="/b", credentials=DigestCredentials("acme", "pw")) is None


def test_quoted_pairs_are_read_and_written_back() -> None:
    header = r'Digest username="acme", realm="a \"b\"", nonce="n", uri="/a", response="0"'
    signed = resigned(header, method="PLAY", uri='/q"x', credentials=DigestCredentials("acme", "pw"))
    ha1 = hashlib.md5(b'acme:a "b":pw').hexdigest()
    ha2 = hashlib.md5(b'PLAY:/q"x').hexdigest()
    assert signed == header.replace('uri="/a"', r'uri="/q\"x"').replace(
        'response="0"', f'response="{hashlib.md5(f"{ha1}:n:{ha2}".encode()).hexdigest()}"'
    )


def test_the_password_is_not_in_the_repr() -> None:
    assert "secret" not in repr(DigestCredentials("acme", "secret"))
    assert "acme" in repr(DigestCredentials("acme", "secret"))
