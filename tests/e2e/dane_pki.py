"""Makes the certificates of the DANE scenarios (test_dane.sh) in one go, and
the TLSA association data of each, so that a run costs one process, not a
hundred openssl calls.

    dane_pki.py DIR < SPEC

SPEC has one certificate per line, parents before children:

    ca   NAME [issuer=PARENT]            a CA (self-signed root without issuer)
    leaf NAME issuer=CA|self dns=A[,B]   a server certificate (self: self-signed)
         [expired] [rsa] [key=OTHER]     (validity ended 30 days ago; RSA 2048;
                                         the key of certificate OTHER)

Writes DIR/NAME.key (PEM, PKCS#8) and DIR/NAME.crt (PEM) for every line,
and DIR/tlsa.sh, to be sourced: for each certificate, six variables
TLSA_<NAME>_<selector>_<mtype> (NAME with "-" as "_") holding the
certificate association data in hex: selector 0 the certificate, 1 its
SubjectPublicKeyInfo; matching type 0 the DER itself, 1 SHA2-256, 2
SHA2-512 (RFC 6698 §2.1). All keys are EC P-256 unless "rsa".
"""
import datetime
import hashlib
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
certs, keys = {}, {}
shell = []


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def write(n, key, cert):
    certs[n], keys[n] = cert, key
    path = os.path.join(out, n + ".key")
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(path, 0o600)
    with open(os.path.join(out, n + ".crt"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    der = cert.public_bytes(serialization.Encoding.DER)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    var = "TLSA_" + n.replace("-", "_")
    for sel, data in ((0, der), (1, spki)):
        for mt, f in ((0, lambda d: d), (1, lambda d: hashlib.sha256(d).digest()),
                      (2, lambda d: hashlib.sha512(d).digest())):
            shell.append("%s_%d_%d=%s" % (var, sel, mt, f(data).hex()))


for line in sys.stdin:
    words = line.split()
    if not words or words[0].startswith("#"):
        continue
    kind, n, opts = words[0], words[1], words[2:]
    kv = dict(o.split("=", 1) for o in opts if "=" in o)
    flags = {o for o in opts if "=" not in o}
    if "key" in kv:
        key = keys[kv["key"]]
    elif "rsa" in flags:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    issuer = kv.get("issuer", "self")
    if issuer == "self":
        ikey, iname, iski = key, None, None
    else:
        ikey, icert = keys[issuer], certs[issuer]
        iname = icert.subject
        iski = icert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    if "expired" in flags:
        nb, na = now - datetime.timedelta(days=60), now - datetime.timedelta(days=30)
    else:
        nb, na = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    if kind == "ca":
        subject = name("DANE test CA " + n)
    else:
        dns = kv.get("dns", "").split(",")
        subject = name(dns[0])
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(iname or subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(nb).not_valid_after(na)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False))
    if iski is not None:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(iski),
                            False)
    if kind == "ca":
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                          False), True)
    else:
        b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), False)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        b = b.add_extension(x509.KeyUsage(True, False, "rsa" in flags, False, False, False,
                                          False, False, False), True)
    write(n, key, b.sign(ikey, hashes.SHA256()))

with open(os.path.join(out, "tlsa.sh"), "w") as f:
    f.write("\n".join(shell) + "\n")
