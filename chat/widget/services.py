"""What the widget does: keys and snippets, visitor sessions, the checks on a socket, sources, tickets."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from chat.limits import Limit
from chat.models import Conversation, QuestionLog
from chat.widget import tokens
from chat.widget.models import ShownChunk, Ticket, WidgetConversation, WidgetKey
from chat.widget.origins import origin_normalize, origin_of
from chat.widget.selectors import origin_is_docent, visitor_conversation, widget_key_enabled
from kb.models import KnowledgeBase

logger = logging.getLogger(__name__)

# How long a session opens the socket; passage links made with it stay valid longer, so that a source
# opened an hour after the answer still shows (they only ever show passages already shown to that visitor).
SESSION_SECONDS: int = getattr(settings, "DOCENT_WIDGET_SESSION_SECONDS", 3600)
PASSAGE_SECONDS: int = getattr(settings, "DOCENT_WIDGET_PASSAGE_SECONDS", 24 * 3600)
VISITOR_SECONDS: int = getattr(settings, "DOCENT_WIDGET_VISITOR_SECONDS", 180 * 24 * 3600)
TICKETS_PER_HOUR = {"visitor": 3, "ip": 10}


class WidgetRefused(Exception):
    """The key, origin or session does not allow this; the reason is for the log, never for the client."""


@dataclass(frozen=True)
class VisitorAccess:
    key: WidgetKey
    session: tokens.VisitorSession
    token: str


# ---- keys -----------------------------------------------------------------------------------------------


def widget_key_upsert(
    *,
    knowledge_base: KnowledgeBase,
    origins: list[str] | None = None,
    title: str | None = None,
    support_email: str | None = None,
) -> tuple[WidgetKey, bool]:
    """The knowledge base's (first) key, created when it has none; origins given replace the list."""
    normalised = None if origins is None else list(dict.fromkeys(origin_normalize(o) for o in origins))
    with transaction.atomic():
        key = WidgetKey.objects.select_for_update().filter(knowledge_base=knowledge_base).order_by("pk").first()
        created = key is None
        if key is None:
            key = WidgetKey(knowledge_base=knowledge_base, title=title or "Help")
        if normalised is not None:
            key.allowed_origins = normalised
        if title is not None:
            key.title = title
        if support_email is not None:
            key.support_email = support_email
        key.full_clean()
        key.save()
    return key, created


def widget_key_rotate(*, key: WidgetKey) -> WidgetKey:
    """A new public id: every snippet, session and passage link made with the old one stops working."""
    key.key = WidgetKey._meta.get_field("key").get_default()
    key.save(update_fields=["key", "updated_at"])
    return key


def widget_snippet(*, key: WidgetKey, base_url: str | None = None) -> str:
    # Not static(): the hashed name of a manifest storage would break pasted snippets at the next deploy.
    base = (base_url or settings.DOCENT_PUBLIC_URL).rstrip("/") + "/"
    src = urljoin(urljoin(base, settings.STATIC_URL), "docent-widget.js")
    return f'<script src="{src}" data-key="{key.key}" async></script>'


# ---- visitor sessions -----------------------------------------------------------------------------------


def frame_access(*, key: WidgetKey, referer_origin: str | None) -> None:
    """Raise WidgetRefused unless the iframe may be served for a page of this origin.

    The browser enforces the CSP frame-ancestors header we send; this refuses early, and also when the
    page is opened some other way, whenever the browser tells us who asked (a Referer).
    """
    if not key.allowed_origins:
        raise WidgetRefused("the key allows no origin")
    if referer_origin is not None and referer_origin not in key.allowed_origins:
        raise WidgetRefused(f"embedded on {referer_origin}, not an allowed origin")


def visitor_session_start(*, key: WidgetKey, origin: str | None) -> dict[str, str]:
    """A new visitor, as the iframe page hands it to its script: a session and a long-lived credential."""
    visitor_id = tokens.new_visitor_id()
    return {
        "session": tokens.session_issue(key=key.key, visitor_id=visitor_id, origin=origin or ""),
        "visitor": tokens.visitor_credential_issue(key=key.key, visitor_id=visitor_id),
    }


def visitor_session_renew(*, key: WidgetKey, credential: Any, previous_session: Any) -> dict[str, str]:
    """A fresh session for a returning visitor (credential) on the page that issued previous_session.

    The embedding origin travels in the previous session (checked again, since origins may have been
    removed); the visitor comes from the credential, or from the previous session when there is none.
    """
    previous = tokens.session_read(previous_session, key=key.key, max_age=VISITOR_SECONDS)
    visitor_id = tokens.visitor_credential_read(credential, key=key.key, max_age=VISITOR_SECONDS)
    if visitor_id is None and previous is not None:
        visitor_id = previous.visitor_id
    if visitor_id is None:
        raise WidgetRefused("neither a visitor credential nor a session")
    origin = previous.origin if previous else ""
    if not key.allowed_origins or (origin and origin not in key.allowed_origins):
        raise WidgetRefused(f"origin {origin!r} is no longer allowed")
    return {
        "session": tokens.session_issue(key=key.key, visitor_id=visitor_id, origin=origin),
        "visitor": tokens.visitor_credential_issue(key=key.key, visitor_id=visitor_id),
    }


def visitor_access(*, key_value: str, token: Any, max_age: int = SESSION_SECONDS) -> VisitorAccess:
    """The enabled key and the visitor's session; WidgetRefused for a forged, expired or foreign one."""
    key = widget_key_enabled(key=key_value)
    if key is None:
        raise WidgetRefused("unknown or disabled key")
    session = tokens.session_read(token, key=key.key, max_age=max_age)
    if session is None:
        raise WidgetRefused("no valid session")
    if not key.allowed_origins or (session.origin and session.origin not in key.allowed_origins):
        raise WidgetRefused(f"session origin {session.origin!r} is not allowed")
    return VisitorAccess(key=key, session=session, token=token)


def socket_access(*, key_value: str, token: Any, origin: str | None, host: str | None) -> VisitorAccess:
    """The checks on a widget websocket handshake.

    The socket is opened by the iframe, whose page is Docent's, so its Origin is normally Docent's own;
    a customer's page may also open it directly with a session. Any other origin is refused, even with a
    valid session: a session copied out of a browser is no use to another website.
    """
    access = visitor_access(key_value=key_value, token=token)
    origin = origin_of(origin)  # "null" (sandboxed or file pages) and garbage become None
    if origin is None:
        raise WidgetRefused("socket without a usable Origin")
    if not origin_is_docent(origin=origin, host=host) and origin not in access.key.allowed_origins:
        raise WidgetRefused(f"socket origin {origin!r} is neither Docent's nor allowed")
    return access


# ---- conversations and sources ------------------------------------------------------------------------


def message_limits(*, key: WidgetKey, visitor_id: str, ip: str | None) -> list[Limit]:
    limits = [Limit("visitor", f"visitor:{key.pk}:{visitor_id}", key.visitor_messages_per_minute, 60)]
    if ip:
        limits.append(Limit("ip", f"ip:{key.pk}:{ip}", key.ip_messages_per_minute, 60))
    limits.append(Limit("key", f"key:{key.pk}", key.messages_per_day, 24 * 3600))
    return limits


def widget_conversation_open(
    *, access: VisitorAccess, conversation_id: int | None, question: str, ip: str | None
) -> int | None:
    """The id of the visitor's conversation to answer in, created (and owned) when new; None if not theirs.

    Created here rather than by `answer` so that it belongs to the visitor before the first word is stored.
    """
    key, session = access.key, access.session
    if conversation_id is not None:
        found = visitor_conversation(key=key, visitor_id=session.visitor_id, conversation_id=conversation_id)
        return found.pk if found else None
    with transaction.atomic():
        conversation = Conversation.objects.create(
            user=None, knowledge_base_id=key.knowledge_base_id, title=question.strip()[:200]
        )
        WidgetConversation.objects.create(
            conversation=conversation,
            key=key,
            visitor_id=session.visitor_id,
            origin=session.origin,
            # kept only where the operator chose to (privacy: question logs keep no IP address by default)
            ip=_valid_ip(ip) if settings.DOCENT_LOG_IP_ADDRESSES else None,
        )
    return conversation.pk


def _valid_ip(ip: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(ip or ""))
    except ValueError:  # "unknown": the server could not tell
        return None


def passage_url(*, key: WidgetKey, chunk_id: int, token: str) -> str:
    return reverse("widget:passage", args=[key.key, chunk_id]) + "?" + urlencode({"s": token})


def widget_sources_show(*, access: VisitorAccess, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sources as the visitor sees them, each opening the public passage viewer, which from now on
    serves that passage to this visitor; none at all when the key hides sources."""
    key = access.key
    if not key.show_sources or not items:
        return []
    ShownChunk.objects.bulk_create(
        [ShownChunk(key=key, visitor_id=access.session.visitor_id, chunk_id=item["chunk_id"]) for item in items],
        ignore_conflicts=True,
    )
    return [{**item, "url": passage_url(key=key, chunk_id=item["chunk_id"], token=access.token)} for item in items]


# ---- "talk to a person" -------------------------------------------------------------------------------


def ticket_limits(*, key: WidgetKey, visitor_id: str, ip: str | None) -> list[Limit]:
    limits = [Limit("visitor", f"ticket-visitor:{key.pk}:{visitor_id}", TICKETS_PER_HOUR["visitor"], 3600)]
    if ip:
        limits.append(Limit("ip", f"ticket-ip:{ip}", TICKETS_PER_HOUR["ip"], 3600))
    return limits


def ticket_create(*, access: VisitorAccess, email: str, message: str, conversation_id: int | None) -> Ticket:
    """A ticket in the admin, with the visitor's conversation if it is theirs, mailed to the support address."""
    key, session = access.key, access.session
    conversation = visitor_conversation(key=key, visitor_id=session.visitor_id, conversation_id=conversation_id)
    ticket = Ticket.objects.create(
        key=key,
        conversation=conversation,
        visitor_id=session.visitor_id,
        email=email,
        message=message,
        origin=session.origin,
    )
    if conversation is not None:  # the question log's last answer in it led to a hand-off (knowledge gaps)
        last = QuestionLog.objects.filter(message__conversation=conversation).order_by("-created_at", "-id").first()
        if last is not None:
            QuestionLog.objects.filter(pk=last.pk).update(handed_off=True)
    if key.support_email:
        _ticket_mail(ticket=ticket, key=key, conversation=conversation)
    return ticket


def _ticket_mail(*, ticket: Ticket, key: WidgetKey, conversation: Conversation | None) -> None:
    # For the support team, in the site's language (LANGUAGE_CODE), whatever the visitor's.
    with translation.override(settings.LANGUAGE_CODE):
        subject, body = _ticket_mail_text(ticket=ticket, key=key, conversation=conversation)
    # EmailMessage rather than send_mail for Reply-To: answering the mail answers the visitor.
    mail = EmailMessage(subject=subject, body=body, to=[key.support_email], reply_to=[ticket.email])
    try:
        mail.send()
    except OSError:  # smtplib's errors are OSErrors; the ticket is in the admin either way
        logger.exception("mailing widget ticket %s to %s failed", ticket.pk, key.support_email)
        return
    ticket.mailed_to = key.support_email
    ticket.mailed_at = timezone.now()
    ticket.save(update_fields=["mailed_to", "mailed_at"])


def _ticket_mail_text(*, ticket: Ticket, key: WidgetKey, conversation: Conversation | None) -> tuple[str, str]:
    public = settings.DOCENT_PUBLIC_URL.rstrip("/")
    lines = [
        _("From: %(email)s") % {"email": ticket.email},
        _("Page: %(origin)s") % {"origin": ticket.origin or _("unknown")},
        "",
        ticket.message,
        "",
    ]
    ticket_url = public + reverse("admin:widget_ticket_change", args=[ticket.pk])
    lines.append(_("Ticket: %(url)s") % {"url": ticket_url})
    if conversation is not None:
        conversation_url = public + reverse("admin:chat_conversation_change", args=[conversation.pk])
        lines += [_("Conversation: %(url)s") % {"url": conversation_url}, ""]
        for m in conversation.messages.all():
            speaker = _("Visitor") if m.role == "user" else "Docent"
            lines.append(f"{speaker}: {m.text}")
    subject = _("[%(title)s] Question from %(email)s") % {"title": key.title, "email": ticket.email}
    return subject.replace("\n", " ").replace("\r", " "), "\n".join(lines)
