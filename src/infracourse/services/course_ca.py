"""The course's own certificate authority: made once into the state folder, it signs the native PostgreSQL's
server certificate, so clients can connect with sslmode=verify-full against a CA they trust on purpose.

    .services/tls/ca.crt        the CA certificate clients pass as sslrootcert (public)
    .services/tls/ca.key        its private key (0600; only ever used here, to sign server certificates)
    .services/tls/server.crt    the server certificate: subjectAltName IP 127.0.0.1 and DNS localhost
    .services/tls/server.key    its key (0600, owned by whoever runs PostgreSQL: the server insists)
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from infracourse import config
from infracourse.paths import state_dir

VALID_DAYS = 3650  # a teaching CA on loopback: long-lived, so a checkout from last year still connects
SERVER_NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class Files:
    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.folder / "server.key"


def files() -> Files:
    return Files(state_dir() / "tls")


def ca_cert_path() -> Path:
    """Where the course CA's certificate is (what sslrootcert names): the one beside the running server's
    certificate when this process can see it (so a second checkout verifies the server the first one started),
    else this checkout's."""
    running = _running_server_ca()
    return running if running is not None and running.exists() else files().ca_cert


def _running_server_ca() -> Path | None:
    import psycopg  # here, not at the top: the launcher imports this module before any client is needed

    try:
        with psycopg.connect(config.postgres_dsn(connect_timeout=2)) as conn:
            cert_file = conn.execute("SHOW ssl_cert_file").fetchone()[0]
    except psycopg.Error:  # down, or a login without the right to read settings (a classroom learner)
        return None
    return Path(cert_file).with_name("ca.crt") if cert_file else None


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "infracourse"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, data: bytes, private: bool) -> None:
    mode = 0o600 if private else 0o644
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as f:
        f.write(data)
    path.chmod(mode)


def _key_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA certificate and its key (the course's, or a rogue one a lesson shows being refused)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def sign_server(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
                names: tuple[str, ...] = SERVER_NAMES) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A server certificate for NAMES (IP addresses or DNS names), signed by CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def write_pem(cert: x509.Certificate, path: Path) -> Path:
    _write(path, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return path


def ensure(owner: str | None = None) -> Files:
    """Make the CA and the server certificate unless they exist; OWNER (a user name) gets the server key."""
    f = files()
    f.folder.mkdir(parents=True, exist_ok=True)
    f.folder.chmod(0o755)  # the server (another user when we are root) must reach its key file
    if not f.ca_cert.exists() or not f.ca_key.exists():
        ca, ca_key = make_ca("infracourse course CA")
        _write(f.ca_key, _key_bytes(ca_key), private=True)
        write_pem(ca, f.ca_cert)
        f.server_cert.unlink(missing_ok=True)
    if not f.server_cert.exists() or not f.server_key.exists():
        ca = x509.load_pem_x509_certificate(f.ca_cert.read_bytes())
        ca_key = serialization.load_pem_private_key(f.ca_key.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        cert, key = sign_server(ca, ca_key)
        _write(f.server_key, _key_bytes(key), private=True)
        write_pem(cert, f.server_cert)
    if owner:
        shutil.chown(f.server_key, owner, owner)
    return f
