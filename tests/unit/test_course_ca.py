"""The course CA: made once, signs a server certificate for the loopback names, keys private."""

from __future__ import annotations

import ipaddress
import stat

import pytest
from cryptography import x509

from infracourse.services import course_ca


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("INFRACOURSE_HOME", str(tmp_path))
    return tmp_path


def test_ensure_makes_a_ca_and_a_server_certificate_it_signed(home):
    files = course_ca.ensure()
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert files.folder == home / ".services" / "tls"


def test_keys_are_private_and_certificates_public(home):
    files = course_ca.ensure()
    assert stat.S_IMODE(files.ca_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.server_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.ca_cert.stat().st_mode) == 0o644


def test_ensure_is_idempotent_and_a_new_ca_means_a_new_server_certificate(home):
    files = course_ca.ensure()
    first = (files.ca_cert.read_bytes(), files.server_cert.read_bytes())
    course_ca.ensure()
    assert (files.ca_cert.read_bytes(), files.server_cert.read_bytes()) == first
    files.ca_key.unlink()
    course_ca.ensure()
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    assert files.ca_cert.read_bytes() != first[0]
    x509.load_pem_x509_certificate(files.server_cert.read_bytes()).verify_directly_issued_by(ca)


def test_a_rogue_ca_did_not_sign_the_server_certificate(home, tmp_path):
    files = course_ca.ensure()
    rogue, _ = course_ca.make_ca("rogue CA")
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    with pytest.raises(Exception):  # noqa: B017 - cryptography raises InvalidSignature or ValueError
        server.verify_directly_issued_by(rogue)
    assert course_ca.write_pem(rogue, tmp_path / "rogue.crt").read_bytes().startswith(b"-----BEGIN CERTIFICATE")
