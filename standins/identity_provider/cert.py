"""Self-signed TLS material for the local identity provider.

MSAL only talks to authorities over HTTPS, so the stand-in needs a certificate that callers can trust.
We generate a small private CA plus a localhost leaf signed by it (browsers and OpenSSL's strict mode
reject a CA certificate used directly as a server certificate). The CA's private key is never written to
disk: nobody can later mint other certificates that a developer's trust store would accept.

Files in the certificate directory:
  cert.pem       leaf + CA certificate (server chain; also usable as a trust file, it contains the CA)
  key.pem        the leaf's private key
  ca.pem         the CA certificate alone
  ca-bundle.pem  certifi's public CAs + ca.pem, for REQUESTS_CA_BUNDLE (see write_ca_bundle)
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if sys.platform != "win32":  # POSIX only; on Windows concurrent first starts are merely unlikely, not prevented.
    import fcntl

CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
CA_FILE = "ca.pem"
BUNDLE_FILE = "ca-bundle.pem"

_VALIDITY = datetime.timedelta(days=825)  # the longest lifetime Apple platforms accept for a TLS leaf
_RENEW_BEFORE = datetime.timedelta(days=7)


@contextlib.contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """Serialise first-start generation: several local services may start at once on one cert dir."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+") as handle:
        if sys.platform != "win32":
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if sys.platform != "win32":
                fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def ensure_certificate(cert_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Return (cert.pem, key.pem), generating them unless a usable pair already exists."""
    directory = Path(cert_dir)
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    with directory_lock(directory):
        if not _usable(cert_path, key_path):
            _generate(directory)
    return cert_path, key_path


def _usable(cert_path: Path, key_path: Path) -> bool:
    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        leaf = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
    except ValueError:
        return False
    now = datetime.datetime.now(datetime.UTC)
    return leaf.not_valid_after_utc - now > _RENEW_BEFORE


def _generate(directory: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    start = now - datetime.timedelta(minutes=5)  # tolerate small clock differences between processes

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SecureMailMerge local development"),
        x509.NameAttribute(NameOID.COMMON_NAME, "SecureMailMerge local development CA"),
    ])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + _VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
            ]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    ca_pem = ca_cert.public_bytes(pem)
    write_atomically(
        directory / KEY_FILE,
        leaf_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        mode=0o600,
    )
    write_atomically(directory / CA_FILE, ca_pem)
    # Written last: _usable() looks at cert.pem, so a crash before here regenerates everything.
    write_atomically(directory / CERT_FILE, leaf_cert.public_bytes(pem) + ca_pem)


def write_ca_bundle(cert_dir: str | os.PathLike) -> Path:
    """Write certifi's CA bundle plus the local CA to <cert_dir>/ca-bundle.pem and return its path.

    requests lets REQUESTS_CA_BUNDLE override a Session's `verify` (MSAL sets only the Session's), so a
    process that talks to the stand-in must point REQUESTS_CA_BUNDLE at a file that trusts it. Including
    the public CAs keeps real HTTPS (Stripe, Graph, ...) verifiable from the same process.
    """
    directory = Path(cert_dir)
    ensure_certificate(directory)
    bundle = directory / BUNDLE_FILE
    public = Path(certifi.where()).read_bytes()
    local = (directory / CA_FILE).read_bytes()
    with directory_lock(directory):
        write_atomically(
            bundle, public.rstrip(b"\n") + b"\n\n# SecureMailMerge local development CA\n" + local
        )
    return bundle
