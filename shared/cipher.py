"""AES-GCM for the stores, through ``cryptography`` (OpenSSL): the service key
(``KRING_CIPHER_KEY``) and every case key (``shared.erasure``).

The bytes are laid out as eventsourcing's own ``AESCipher`` lays them out (a 12-byte nonce, the
16-byte tag, the ciphertext), so a store written with either reads with the other; this one
costs about a microsecond per event where pycryptodome's GCM set-up costs a hundred, which a
case key per event makes felt.
"""

from __future__ import annotations

import os
from base64 import b64decode, b64encode

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import Cipher
from eventsourcing.utils import Environment

NONCE_BYTES = 12
TAG_BYTES = 16


class AESGCMCipher(Cipher):
    """eventsourcing's ``Cipher`` (``CIPHER_TOPIC=shared.cipher:AESGCMCipher``, ``CIPHER_KEY``
    a base64 key of 16, 24 or 32 bytes)."""

    CIPHER_KEY = "CIPHER_KEY"

    def __init__(self, environment: Environment) -> None:
        key = environment.get(self.CIPHER_KEY)
        if not key:
            raise OSError(f"'{self.CIPHER_KEY}' not in env")
        self._aead = AESGCM(b64decode(key))

    @classmethod
    def of_key(cls, key: str) -> AESGCMCipher:
        return cls(Environment(env={cls.CIPHER_KEY: key}))

    @staticmethod
    def create_key(num_bytes: int = 32) -> str:
        if num_bytes not in (16, 24, 32):
            raise ValueError(f"an AES key is 16, 24 or 32 bytes, not {num_bytes}")
        return b64encode(os.urandom(num_bytes)).decode()

    def encrypt(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext, None)  # ciphertext, then the tag
        return nonce + sealed[-TAG_BYTES:] + sealed[:-TAG_BYTES]

    def decrypt(self, ciphertext: bytes) -> bytes:
        if len(ciphertext) < NONCE_BYTES + TAG_BYTES:
            raise ValueError("Damaged cipher text: too short")
        nonce = ciphertext[:NONCE_BYTES]
        tag = ciphertext[NONCE_BYTES : NONCE_BYTES + TAG_BYTES]
        try:
            return self._aead.decrypt(nonce, ciphertext[NONCE_BYTES + TAG_BYTES :] + tag, None)
        except InvalidTag:
            raise ValueError("Cipher text is damaged: the tag does not match") from None


class ServiceCipher(AESGCMCipher):
    """The service key (``KRING_CIPHER_KEY``), and during a rotation the key it replaces
    (``KRING_CIPHER_KEY_FALLBACK``): everything is written under the first, read under either.

    What a store holds under the fallback key stays readable until ``kring rekey`` has sealed it
    under the service key again (``shared.at_rest.rekey``); then the fallback can go."""

    CIPHER_KEY_FALLBACK = "CIPHER_KEY_FALLBACK"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        fallback = environment.get(self.CIPHER_KEY_FALLBACK)
        self.fallback = AESGCMCipher.of_key(fallback) if fallback else None

    def decrypt(self, ciphertext: bytes) -> bytes:
        try:
            return super().decrypt(ciphertext)
        except ValueError:
            if self.fallback is None:
                raise
            return self.fallback.decrypt(ciphertext)

    def opens(self, ciphertext: bytes) -> bool:
        """Whether the service key itself (not the fallback) opens ``ciphertext``."""
        try:
            super().decrypt(ciphertext)
        except ValueError:
            return False
        return True

    def reseal(self, ciphertext: bytes) -> bytes | None:
        """``ciphertext`` sealed under the service key, or None if it already is."""
        if self.opens(ciphertext):
            return None
        return self.encrypt(self.decrypt(ciphertext))
