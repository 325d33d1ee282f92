"""``kring partners``: onboarding a partner organisation, and what it takes besides the registry.

Registering is the partners service's (an operator's HTTP call); the credentials are made here,
where the operator keeps the system's secrets:

- the partner's NATS identity (``partner-<organisation>``): a password in the NATS passwords'
  folder (``kring run``: ``<data>/keys/nats``), the server's authorization block written again
  from that folder, and the running nats-server told to reload it (``kring run``: its pid file);
  a deployment renders and reloads its own way (``--nats-config-dir`` names none: see
  ``docs/operations.md``);
- its OAuth2 client for the API (client credentials, role ``partner``, its organisation in the
  token): a file the development issuer reads at every token request (``<data>/keys/clients``);
  with another issuer (Keycloak) the operator makes the client there (``--no-oauth-client``);
- a file with everything the partner needs, readable by its owner only, handed to the partner
  over a safe channel; it is the only place the secrets are shown.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kring.issuer import Client, clients_dir, secret_digest, write_client_file
from kring.natsconf import (
    AUTHORIZATION_FILE,
    CredentialsError,
    await_reload,
    keys_dir,
    make_password,
    read_credentials,
    reload,
    remove_password,
    write_authorization,
)
from shared.actor import Role
from shared.permissions import inbox_prefix, partner_identity_name
from shared.subjects import (
    PARTNER_CONSUMER,
    is_organisation_id,
    partner_stream,
    partner_subjects,
)


class PartnerSetupError(Exception):
    """Something the operator can fix; the message says what."""


@dataclass(frozen=True)
class Places:
    """Where a system's secrets are kept."""

    #: The NATS passwords (``<identity>.password``).
    nats_keys: Path
    #: The folder of nats-server's ``authorization.conf`` and ``nats.pid`` (None: render and
    #: reload are a deployment's own steps).
    nats_config: Path | None
    #: The development issuer's client files (None: the operator makes clients elsewhere).
    clients: Path | None

    @classmethod
    def of_data(cls, data_dir: Path) -> Places:
        """``kring run``'s."""
        return cls(keys_dir(data_dir), data_dir / "nats", clients_dir(data_dir))


def check_organisation(organisation: str) -> str:
    if not is_organisation_id(organisation):
        raise PartnerSetupError(
            f"{organisation!r} is no organisation id: lower-case letters, digits and hyphens,"
            " at most 63, e.g. jeugdzorg-utrecht"
        )
    return organisation


def nats_password(places: Places, organisation: str, *, rotate: bool = False) -> str:
    places.nats_keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    return make_password(places.nats_keys, partner_identity_name(organisation), replace=rotate)


def apply_to_nats(places: Places, organisation: str | None = None) -> str:
    """Write the authorization block again from the passwords there are, and have the running
    server reload it; with ``organisation``, wait until the server holds its identity as the
    folder has it now (its password, or none once revoked). Says what was done."""
    if places.nats_config is None:
        return "NATS: render the authorization block and reload the servers (your deployment)"
    try:
        passwords = read_credentials(places.nats_keys)
    except CredentialsError as error:
        raise PartnerSetupError(str(error)) from None
    write_authorization(places.nats_config / AUTHORIZATION_FILE, passwords)
    if reload(places.nats_config):
        if organisation is None:
            return "NATS: reloaded"
        identity = partner_identity_name(organisation)
        password = passwords.get(identity)
        if await_reload(places.nats_config, identity, password):
            return "NATS: reloaded; the partner's identity holds on the running server now"
        return "NATS: told to reload, not yet seen applied (the feed follows when it is)"
    return "NATS: written; no nats-server of this data folder runs (it applies at its start)"


def oauth_client(places: Places, organisation: str) -> tuple[str, str] | None:
    """A new secret for the partner's client (replacing any earlier one); (client id, secret)."""
    if places.clients is None:
        return None
    client_id = partner_identity_name(organisation)
    secret = secrets.token_urlsafe(32)
    write_client_file(
        places.clients,
        Client(
            client_id=client_id,
            client_secret_sha256=secret_digest(secret),
            roles=[Role.PARTNER.value],
            organisation=organisation,
        ),
    )
    return client_id, secret


def forget(places: Places, organisation: str) -> None:
    """The partner's NATS password and OAuth client, gone."""
    remove_password(places.nats_keys, partner_identity_name(organisation))
    if places.clients is not None:
        (places.clients / f"{partner_identity_name(organisation)}.json").unlink(missing_ok=True)


def credentials(
    *,
    organisation: str,
    name: str,
    nats_url: str,
    password: str,
    oauth: tuple[str, str] | None,
    token_url: str,
    plans_url: str,
    partners_url: str,
    webhook: dict[str, Any] | None,
) -> dict[str, Any]:
    """What the partner needs, as ``docs/partners.md`` explains it."""
    identity = partner_identity_name(organisation)
    return {
        "organisation": organisation,
        "name": name,
        "nats": {
            "url": nats_url,
            "user": identity,
            "password": password,
            "inbox_prefix": inbox_prefix(identity),
            "stream": partner_stream(organisation),
            "consumer": PARTNER_CONSUMER,
            "subjects": partner_subjects(organisation),
        },
        "oauth": {
            "token_url": token_url,
            "client_id": oauth[0] if oauth else identity,
            "client_secret": oauth[1] if oauth else None,
        },
        "plans_url": plans_url,
        "partners_url": partners_url,
        "webhook": webhook,
    }


def write_credentials(folder: Path, organisation: str, document: dict[str, Any]) -> Path:
    """``partner-<organisation>.json`` in ``folder``, readable by its owner only."""
    path = folder / f"{partner_identity_name(organisation)}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=2)
        out.write("\n")
    path.chmod(0o600)
    return path
