"""Email notifications over SMTP, and their cleanup."""

from __future__ import annotations

import smtplib
import time
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from worker.domain.store import audit, transaction
from worker.errors import PermanentError, TransientError
from worker.tasks.base import TaskpulseTask
from worker.tasks.params import Body, Days, EmailAddress, Subject, UserId


def send_notification_email(
    self: TaskpulseTask,
    to: EmailAddress,
    subject: Subject,
    body: Body,
    user_id: UserId | None = None,
) -> dict[str, Any]:
    """Send one email through the configured SMTP relay and record it as a sent notification.

    A relay that cannot be reached is a transient error (retried with backoff); an address the
    relay refuses, or one that is malformed, is permanent.
    """
    message = EmailMessage()
    message["From"] = self.settings.smtp_sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="taskpulse")
    message.set_content(body)
    refused = _deliver(self, message)
    if refused:
        raise PermanentError(f"the SMTP relay refused {to}: {refused}")
    now = time.time()
    with self.store() as conn, transaction(conn):
        notification_id = conn.execute(
            "INSERT INTO notifications (user_id, channel, recipient, subject, body, status,"
            " created_at, sent_at) VALUES (?, 'email', ?, ?, ?, 'sent', ?, ?)",
            (user_id, to, subject, body, now, now),
        ).lastrowid
        audit(conn, "email.sent", to=to, notification_id=notification_id)
    return {"notification_id": notification_id, "to": to, "message_id": message["Message-ID"]}


def _deliver(task: TaskpulseTask, message: EmailMessage) -> dict[str, Any]:
    settings = task.settings
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout
        ) as smtp:
            return dict(smtp.send_message(message))
    except smtplib.SMTPRecipientsRefused as exc:
        return dict(exc.recipients)
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        if 400 <= exc.smtp_code < 500:  # 4xx is the relay saying "try again later"
            raise TransientError(f"SMTP relay deferred the message: {exc}") from exc
        raise PermanentError(f"SMTP relay rejected the message: {exc}") from exc
    except (OSError, smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError) as exc:
        raise TransientError(
            f"SMTP relay {settings.smtp_host}:{settings.smtp_port} unreachable: {exc}"
        ) from exc


def cleanup_old_notifications(self: TaskpulseTask, days: Days = 30) -> dict[str, int]:
    """Delete notifications created more than ``days`` days ago."""
    cutoff = time.time() - days * 86400
    with self.store() as conn, transaction(conn):
        deleted = conn.execute("DELETE FROM notifications WHERE created_at < ?", (cutoff,)).rowcount
        audit(conn, "notifications.cleaned", deleted=deleted, days=days)
    return {"deleted": deleted, "days": days}


TASKS = (send_notification_email, cleanup_old_notifications)
