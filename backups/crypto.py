"""Encryption at rest of backup files: AES-256-GCM in 64 KiB chunks, streamed both ways.

A backup holds every user's prompts and password hashes. Fernet would be simpler but encrypts a
whole message in memory; a backup can be gigabytes, so it is cut into chunks, each sealed on its
own (the STREAM construction): memory stays at one chunk however large the file.

The file: a header, then the chunks. The header (44 bytes) holds a magic, the format version,
the chunk size, a key identifier, a random salt and a random nonce prefix; it is authenticated as
the associated data of every chunk, so no byte of it can change unseen. Each file gets its own
AES key, derived from the operator's key and the salt with HKDF, so nonces never repeat across
files. A chunk's nonce is the prefix, the chunk's number and a last-chunk flag: reordered or
dropped chunks fail to open, and a file cut at a chunk boundary lacks the chunk flagged last.
The key identifier (an HMAC of a fixed text under the operator's key, which says nothing of the
key) tells a wrong key apart from a damaged file.
"""

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"\x89POBAK\r\n"
VERSION = 1
CHUNK = 64 * 1024
TAG = 16
HEADER = struct.Struct(">8sBI8s16s7s")  # magic, version, chunk size, key id, salt, nonce prefix
MAX_CHUNK = 16 * 1024 * 1024  # a header naming a larger chunk is not ours
KEY_BYTES = 32
GENERATE = (
    'python3 -c "import base64, secrets; print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())"'
)


class DecryptionError(ValueError):
    """The file cannot be decrypted with this key."""


class WrongKeyError(DecryptionError):
    """The file was encrypted with another key."""


class DamagedError(DecryptionError):
    """The file was made with this key but was changed, cut short or is not ours."""


def key_generate() -> str:
    """A new key, as BACKUP_ENCRYPTION_KEY takes it."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def key_refusal(text: str) -> str:
    """Why ``text`` is not a key (the message never shows it), or "" when it is one."""
    try:
        key = base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        key = b""
    if len(key) == KEY_BYTES and base64.urlsafe_b64encode(key).decode() == text:
        return ""
    return (
        "BACKUP_ENCRYPTION_KEY must be 32 random bytes in URL-safe base64 (44 characters), and this "
        "value is not (it is not shown here). Generate one with `manage.py backup --generate-key` or "
        f"{GENERATE}, and keep a copy somewhere safe: an encrypted backup cannot be restored without it."
    )


def key_parse(text: str) -> bytes:
    if refusal := key_refusal(text):
        raise ValueError(refusal)
    return base64.urlsafe_b64decode(text.encode("ascii"))


def is_encrypted(head: bytes) -> bool:
    """Whether a file that starts with ``head`` is one of ours, encrypted."""
    return head.startswith(MAGIC)


def _key_id(key: bytes) -> bytes:
    return hmac.new(key, b"prompt-optimizer backup key id", hashlib.sha256).digest()[:8]


def _file_key(key: bytes, salt: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"prompt-optimizer backup v1")
    return AESGCM(hkdf.derive(key))


def _nonce(prefix: bytes, number: int, last: bool) -> bytes:
    if number >= 2**32:
        raise ValueError("a backup file of more than 2**32 chunks cannot be encrypted")
    return prefix + struct.pack(">IB", number, 1 if last else 0)


class Encryptor:
    """A write-only binary stream that encrypts what it is given into ``target``, chunk by chunk.

    ``finish()`` seals the last chunk: a file without it does not decrypt. It has no ``tell``, so
    ``zipfile`` writes into it as into a pipe (sizes after each member, no seeking back)."""

    def __init__(self, target: BinaryIO, key: bytes):
        salt, prefix = secrets.token_bytes(16), secrets.token_bytes(7)
        self.header = HEADER.pack(MAGIC, VERSION, CHUNK, _key_id(key), salt, prefix)
        self.target, self.prefix, self.aead = target, prefix, _file_key(key, salt)
        self.buffer, self.number, self.finished = bytearray(), 0, False
        target.write(self.header)

    def write(self, data) -> int:
        self.buffer += data
        while len(self.buffer) > CHUNK:  # the last chunk is sealed by finish(), never here
            self._seal(bytes(self.buffer[:CHUNK]), last=False)
            del self.buffer[:CHUNK]
        return len(data)

    def flush(self) -> None:
        self.target.flush()

    def finish(self) -> None:
        if not self.finished:
            self._seal(bytes(self.buffer), last=True)
            self.buffer.clear()
            self.finished = True
        self.target.flush()

    def _seal(self, plain: bytes, *, last: bool) -> None:
        nonce = _nonce(self.prefix, self.number, last)
        self.target.write(self.aead.encrypt(nonce, plain, self.header))
        self.number += 1


def decrypt(source: BinaryIO, target: BinaryIO, key: bytes) -> None:
    """Decrypt ``source`` (positioned at its start) into ``target``, chunk by chunk.

    WrongKeyError when it was made with another key; DamagedError when a byte was changed, chunks
    were moved, it was cut short or it is not ours. ``target`` may then hold part of the plain
    text: the caller deletes it."""
    header = source.read(HEADER.size)
    if len(header) < HEADER.size or not is_encrypted(header):
        raise DamagedError("it does not start like an encrypted backup of ours")
    _magic, version, chunk, key_id, salt, prefix = HEADER.unpack(header)
    if version != VERSION:
        raise DamagedError(f"it is in encryption format {version}; this version reads format {VERSION}")
    if not 0 < chunk <= MAX_CHUNK:
        raise DamagedError("its header is not ours")
    if not hmac.compare_digest(key_id, _key_id(key)):
        raise WrongKeyError("it was encrypted with another key")
    aead, number = _file_key(key, salt), 0
    sealed = source.read(chunk + TAG)
    while True:
        following = source.read(chunk + TAG)
        last = not following
        if len(sealed) < TAG:
            raise DamagedError("it was cut short")
        try:
            target.write(aead.decrypt(_nonce(prefix, number, last), sealed, header))
        except InvalidTag:
            raise DamagedError("it was changed or cut short (a chunk does not authenticate)") from None
        if last:
            return
        sealed, number = following, number + 1
