"""The lab's own certificate authority: one local CA (trustme) that every lab server's certificate
comes from and every client can verify against.

A server that offers STARTTLS with a certificate nobody can verify breaks mail libraries' default
options (Nodemailer: "unable to verify the first certificate"). So the lab offers STARTTLS only when
asked, and then with a certificate from this CA, exported as a file together with the environment
variables Python's and Node's clients read:

>>> ca = LabCA()                                                    # doctest: +SKIP
>>> ca.export("build/lab-ca")                                       # doctest: +SKIP
PosixPath('build/lab-ca/ca.pem')
>>> ca.client_env()                                                 # doctest: +SKIP
{'SSL_CERT_FILE': '.../ca.pem', 'NODE_EXTRA_CA_CERTS': '.../ca.pem'}
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import trustme

__all__ = ["LabCA", "ServerCertificate"]


class ServerCertificate:
    """A certificate and key issued by a `LabCA` for some host names (in memory, or as files)."""

    def __init__(self, ca: LabCA, cert: trustme.LeafCert, hostnames: list[str]) -> None:
        self.ca = ca
        self.hostnames = hostnames
        self._cert = cert

    def server_context(self) -> ssl.SSLContext:
        """An SSL context a server presents this certificate with."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self._cert.configure_cert(context)
        return context

    def write(self, directory: str | os.PathLike[str], name: str = "server") -> tuple[Path, Path]:
        """Write `<name>.pem` (certificate chain) and `<name>.key` (mode 0600) for servers that read files."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
        cert_file.write_bytes(b"".join(blob.bytes() for blob in self._cert.cert_chain_pems))
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(self._cert.private_key_pem.bytes())
        os.chmod(key_file, 0o600)
        return cert_file, key_file


class LabCA:
    """A local certificate authority made when the lab starts (never trusted system-wide)."""

    def __init__(self, organization: str = "emailkit lab") -> None:
        import trustme  # only needed when TLS is on

        self._ca = trustme.CA(organization_name=organization)
        self.pem: bytes = self._ca.cert_pem.bytes()
        self.file: Path | None = None

    def issue(self, *hostnames: str) -> ServerCertificate:
        """A server certificate for `hostnames` (defaults: localhost and 127.0.0.1)."""
        names = sorted(set(hostnames or ("localhost", "127.0.0.1")) - {"", "0.0.0.0", "::"})
        return ServerCertificate(self, self._ca.issue_cert(*names), names)

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that verifies certificates of this CA (and nothing else)."""
        context = ssl.create_default_context(cadata=self.pem.decode("ascii"))
        return context

    def export(self, directory: str | os.PathLike[str]) -> Path:
        """Write the CA certificate to `directory/ca.pem` (public, no key) and remember where."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        self.file = (folder / "ca.pem").resolve()
        self.file.write_bytes(self.pem)
        return self.file

    def client_env(self) -> dict[str, str]:
        """Environment variables that make Python's ssl and Node's tls trust this CA (after `export`)."""
        if self.file is None:
            raise RuntimeError("export() the CA to a file first")
        return {"SSL_CERT_FILE": str(self.file), "NODE_EXTRA_CA_CERTS": str(self.file)}
