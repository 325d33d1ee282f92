"""The SMTP adapter: sends one copy of the plan, the PDF attached. Configured from settings
(``KRING_SMTP_*``); blocking (smtplib), so callers run it in a thread.

A failure says whether trying again can help, and never carries the address: SMTP error texts
often quote it, and the reason ends up in a stored delivery record and in logs.

Addresses are checked where they are entered (``checked_address``, with email-validator, no DNS
look-ups): an internationalised address is taken, and sent as far as the SMTP server allows
(a domain in its ASCII form; a non-ASCII mailbox needs a server that speaks SMTPUTF8, and one
that does not refuses the copy for good).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from email_validator import EmailNotValidError, validate_email

from services.plans.settings import PlansSettings

#: The longest address SMTP carries (RFC 5321: a 254-octet path).
MAX_ADDRESS_LENGTH = 254


def checked_address(address: str) -> str:
    """The address as it is kept (normalised), if it is one; else ValueError, which names no
    part of it (the error may be shown or logged)."""
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        raise ValueError("not a valid e-mail address") from None


def _as_sent(address: str) -> str:
    """The form the SMTP envelope takes: all ASCII where the mailbox is."""
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return address  # stored before addresses were checked: smtplib will say
    return checked.ascii_email or checked.normalized


@dataclass(frozen=True)
class OutgoingMail:
    to: str
    subject: str
    text: str
    attachment: bytes
    filename: str


class DeliveryError(Exception):
    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Mailer(Protocol):
    def send(self, mail: OutgoingMail) -> None: ...


class SmtpMailer:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        user: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.user, self.password = user, password
        self.starttls, self.timeout = starttls, timeout

    @classmethod
    def from_settings(cls, settings: PlansSettings) -> SmtpMailer | None:
        if not settings.smtp_host:
            return None
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            user=settings.smtp_user,
            password=(
                settings.smtp_password.get_secret_value() if settings.smtp_password else None
            ),
            starttls=settings.smtp_starttls,
            timeout=settings.smtp_timeout_seconds,
        )

    def send(self, mail: OutgoingMail) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = _as_sent(mail.to)
        message["Subject"] = mail.subject
        message.set_content(mail.text)
        message.add_attachment(
            mail.attachment, maintype="application", subtype="pdf", filename=mail.filename
        )
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(message)
        except smtplib.SMTPNotSupportedError:
            # A non-ASCII mailbox, and a server without SMTPUTF8: it will not learn it soon.
            raise DeliveryError(
                "smtp: international address not supported", permanent=True
            ) from None
        except smtplib.SMTPRecipientsRefused as error:
            codes = sorted({code for code, _ in error.recipients.values()})
            raise DeliveryError(
                f"smtp: recipient refused ({', '.join(map(str, codes))})",
                permanent=all(code >= 500 for code in codes),
            ) from None
        except smtplib.SMTPResponseException as error:
            raise DeliveryError(
                f"smtp: {type(error).__name__} {error.smtp_code}", permanent=error.smtp_code >= 500
            ) from None
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryError(f"smtp: {type(error).__name__}", permanent=False) from None
