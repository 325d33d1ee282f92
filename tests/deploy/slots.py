"""What the deployment files already name but the code does not provide yet.

The deployment is built to the names the parts agreed on (settings, commands); where another
piece of work has not landed in main yet, its name is listed here with who brings it. The tests
accept a pending name only while it is pending: once the code provides it, they fail until it is
taken off this list, so a name that landed differently cannot hide here. docs/operations.md lists
the same slots for operators ("Pending"), checked by a test.
"""

from __future__ import annotations

#: KRING_ variables the deployment sets that no settings class reads yet: name -> who brings it.
PENDING_SETTINGS: dict[str, str] = {
    "KRING_SECRETS_DIR": "settings from files (KRING_SECRETS_DIR)",
    "KRING_NATS_USER": "the closed bus",
    "KRING_NATS_PASSWORD": "the closed bus",
    "KRING_OIDC_ISSUER": "HTTP identity",
    "KRING_OIDC_JWKS_URL": "HTTP identity",
    "KRING_OIDC_ROLES_CLAIM": "HTTP identity",
    "KRING_ISSUER_PORT": "HTTP identity (the development issuer)",
}

#: `kring` subcommands the deployment runs that the CLI does not have yet: words -> who brings it.
PENDING_COMMANDS: dict[tuple[str, ...], str] = {
    # kring nats-auth --passwords-dir DIR --out FILE: DIR holds nats_password_<identity> files
    # (deploy/make-secrets); FILE gets the authorization block, readable by the NATS nodes.
    ("nats-auth",): "the closed bus: render the authorization block from the permission table",
    # kring streams ensure --replicas N, as KRING_NATS_USER=admin; exits 0 when they exist.
    ("streams", "ensure"): "the closed bus: create KRING and KRING_DLQ as admin, with replicas",
    # kring issuer --host 0.0.0.0 --allow-any-address, port KRING_ISSUER_PORT, keys under
    # KRING_DATA_DIR, its public URL from KRING_OIDC_ISSUER, its key set at /jwks.json.
    ("issuer",): "HTTP identity: the development issuer as a process of its own",
}
