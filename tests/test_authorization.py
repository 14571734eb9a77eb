"""The authorization matrix: every route that takes an id, for every user and every object.

Three users (the owner of bases Alpha and Beta, a reader of Alpha only, an outsider), a document of Alpha
restricted to a group only the owner is in, conversations of the owner and of the reader. The routes are read
from the URL conf and the websocket routing: a route with no rule below fails the test, so a new route cannot
be added without saying who may reach it. Every denied pair must answer 404 (HTTP) or a refused socket / an
error frame (websocket), every allowed pair must work, and no page may name an object its reader may not see.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from api.services import api_key_create
from chat.models import Citation, Conversation, Message
from chat.routing import websocket_urlpatterns
from chat.widget import tokens
from chat.widget.models import ShownChunk, WidgetConversation, WidgetKey
from kb.ingest.pipeline import run_pipeline
from kb.models import Chunk, Document, KnowledgeBase
from kb.services import document_create, document_restrict, knowledge_base_create, membership_set

pytestmark = pytest.mark.django_db(transaction=True)

USERS = ("owner", "reader", "outsider")
REFUSED_QUESTION = "How do I configure AppArmor profiles?"  # answered by a refusal, without the model
SHOP = "http://shop.example"

# Words that appear only in one object each: a page shown to a user who may not see that object must not hold them.
SECRETS = {
    "kb:A": "Alphabase",
    "kb:B": "Betabase",
    "doc:A-public": "Alphapublicdoc",
    "doc:A-restricted": "Alpharestricteddoc",
    "doc:B": "Betadoc",
    "conv:owner-A": "Ownersalphaquestion",
    "conv:reader-A": "Readersalphaquestion",
    "conv:owner-B": "Ownersbetaquestion",
}

# What each user may do (kb: read the base; edit/manage: hold that role in it; doc: see the document;
# conv: their own conversation).
VISIBLE = {
    "owner": {
        *("kb:A", "kb:B", "edit:A", "edit:B", "manage:A", "manage:B"),
        *("doc:A-public", "doc:A-restricted", "doc:B", "conv:owner-A", "conv:owner-B", "key:owner"),
    },
    "reader": {"kb:A", "doc:A-public", "conv:reader-A", "key:reader"},
    "outsider": set(),
}


@dataclass
class World:
    users: dict[str, Any]
    kbs: dict[str, KnowledgeBase]
    docs: dict[str, Document]
    chunks: dict[str, Chunk]
    conversations: dict[str, Conversation]
    answers: dict[str, Message]
    keys: dict[str, WidgetKey]
    memberships: dict[str, int]
    confidential: Group
    # each user's API key: (id, secret)
    api_keys: dict[str, tuple[int, str]]


def _document(kb: KnowledgeBase, name: str, text: str) -> Document:
    document = document_create(
        knowledge_base=kb, content=io.BytesIO(text.encode()), filename=f"{name}.txt", title=name, enqueue=False
    ).document
    assert run_pipeline(document).status == Document.Status.READY
    return document


def build_world(django_user_model: Any) -> World:
    users = {name: django_user_model.objects.create_user(name, password=f"{name}-password-1") for name in USERS}
    confidential = Group.objects.create(name="confidential")
    users["owner"].groups.add(confidential)
    kbs = {
        "A": knowledge_base_create(slug="alpha", name=SECRETS["kb:A"], owner=users["owner"]),
        "B": knowledge_base_create(slug="beta", name=SECRETS["kb:B"], owner=users["owner"]),
    }
    membership_set(knowledge_base=kbs["A"], role="reader", actor=users["owner"], user=users["reader"])
    bystanders = Group.objects.create(name="bystanders")  # a member group with no user in it, to be removed
    memberships = {
        name: membership_set(knowledge_base=kbs[name], role="reader", actor=None, group=bystanders).pk
        for name in ("A", "B")
    }
    docs = {
        "A-public": _document(kbs["A"], SECRETS["doc:A-public"], "The kettle boils water in three minutes."),
        "A-restricted": _document(
            kbs["A"], SECRETS["doc:A-restricted"], "Salaries are reviewed every March by the Zorblax committee."
        ),
        "B": _document(kbs["B"], SECRETS["doc:B"], "The warehouse opens at seven in the morning."),
    }
    document_restrict(document=docs["A-restricted"], groups=[confidential], actor=users["owner"])
    chunks = {name: Chunk.objects.filter(document=doc).first() for name, doc in docs.items()}
    conversations, answers = {}, {}
    for name, (user, kb, doc) in {
        "owner-A": ("owner", "A", "A-public"),
        "reader-A": ("reader", "A", "A-public"),
        "owner-B": ("owner", "B", "B"),
    }.items():
        title = SECRETS[f"conv:{name}"]
        conversation = Conversation.objects.create(user=users[user], knowledge_base=kbs[kb], title=title)
        conversation.messages.create(role="user", text=title)
        chunk = chunks[doc]
        source = {
            "n": 1,
            "document_id": chunk.document_id,
            "title": docs[doc].title,
            "page": None,
            "heading": None,
            "chunk_id": chunk.pk,
            "score": 1.0,
            "snippet": chunk.text,
            "url": reverse("kb:passage", args=[chunk.document_id, chunk.pk]),
        }
        answer = conversation.messages.create(role="assistant", text="An answer [1].", sources=[source])
        Citation.objects.create(message=answer, chunk=chunk, number=1)
        conversations[name], answers[name] = conversation, answer
    keys = {name: WidgetKey.objects.create(knowledge_base=kbs[name], allowed_origins=[SHOP]) for name in ("A", "B")}
    api_keys = {}
    for name in USERS:
        key, secret = api_key_create(user=users[name])
        api_keys[name] = (key.pk, secret)
    return World(users, kbs, docs, chunks, conversations, answers, keys, memberships, confidential, api_keys)


@pytest.fixture
def world(django_user_model) -> World:
    return build_world(django_user_model)


# ---- the routes, read from the URL conf


@dataclass(frozen=True)
class Route:
    name: str  # "namespace:name", or the pattern itself when unnamed
    pattern: str
    params: tuple[str, ...]


def http_routes() -> list[Route]:
    found: list[Route] = []

    def walk(patterns: list[Any], prefix: str, namespace: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                inner = f"{namespace}:{entry.namespace}" if namespace and entry.namespace else entry.namespace or ""
                walk(entry.url_patterns, prefix + str(entry.pattern), inner or namespace)
            elif isinstance(entry, URLPattern):
                pattern = prefix + str(entry.pattern)
                name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name or pattern
                params = tuple(re.findall(r"<(?:\w+:)?(\w+)>", pattern)) + tuple(re.findall(r"\(\?P<(\w+)>", pattern))
                found.append(Route(name, pattern, params))

    walk(get_resolver().url_patterns, "", "")
    return found


def websocket_routes() -> list[Route]:
    return [
        Route(str(p.pattern), str(p.pattern), tuple(re.findall(r"<(?:\w+:)?(\w+)>", str(p.pattern))))
        for p in websocket_urlpatterns
    ]


# ---- HTTP rules: for a route, the (user, target, request, allowed) cases


@dataclass(frozen=True)
class Case:
    user: str
    label: str
    method: str
    url: str
    allowed: bool
    data: dict[str, Any] = field(default_factory=dict)


Needs = str | tuple[str, ...] | None  # what the user must hold (all of it); None: never (a missing object)


def _users_x(
    targets: dict[str, tuple[list[Any], Needs]],
    url: Callable[..., str],
    method: str = "GET",
    data: Callable[[World, str], dict[str, Any]] | None = None,
    role: str | None = None,
) -> Callable[[World], list[Case]]:
    """Cases for every user and target; a target is (url args, what it needs). `role` ("edit", "manage"): the
    route also needs that role in the base of the target's first argument."""

    def cases(world: World) -> list[Case]:
        out = []
        for user in USERS:
            for label, (args, needs) in targets.items():
                wanted = () if needs is None else (needs,) if isinstance(needs, str) else needs
                if role and needs is not None:
                    wanted = (*wanted, f"{role}:{label[0]}")
                allowed = needs is not None and all(w in VISIBLE[user] for w in wanted)
                body = data(world, label) if data else {}
                out.append(Case(user, label, method, url(*resolve(world, args)), allowed, body))
        return out

    return cases


def resolve(world: World, args: list[Any]) -> list[Any]:
    return [a(world) if callable(a) else a for a in args]


def _slug(name: str) -> Callable[[World], str]:
    return lambda w: w.kbs[name].slug


def _doc(name: str) -> Callable[[World], int]:
    return lambda w: w.docs[name].pk


def _chunk(name: str) -> Callable[[World], int]:
    return lambda w: w.chunks[name].pk


def _conv(name: str) -> Callable[[World], int]:
    return lambda w: w.conversations[name].pk


def _answer(name: str) -> Callable[[World], int]:
    return lambda w: w.answers[name].pk


MISSING = 987654321
BASES = {"A": ([_slug("A")], "kb:A"), "B": ([_slug("B")], "kb:B"), "missing": (["no-such-base"], None)}
DOCUMENTS = {
    "A-public": ([_doc("A-public")], "doc:A-public"),
    "A-restricted": ([_doc("A-restricted")], "doc:A-restricted"),
    "B": ([_doc("B")], "doc:B"),
    "missing": ([MISSING], None),
}
PASSAGES = {
    "A-public": ([_doc("A-public"), _chunk("A-public")], "doc:A-public"),
    "A-restricted": ([_doc("A-restricted"), _chunk("A-restricted")], "doc:A-restricted"),
    "B": ([_doc("B"), _chunk("B")], "doc:B"),
    "A-public with B's chunk": ([_doc("A-public"), _chunk("B")], None),
    "missing": ([MISSING, MISSING], None),
}
CONVERSATIONS = {
    "owner-A": ([_conv("owner-A")], "conv:owner-A"),
    "reader-A": ([_conv("reader-A")], "conv:reader-A"),
    "owner-B": ([_conv("owner-B")], "conv:owner-B"),
    "missing": ([MISSING], None),
}
IN_BASE = {  # (slug, document id): a document of another base answers as a missing one
    "A-public": ([_slug("A"), _doc("A-public")], "doc:A-public"),
    "A-restricted": ([_slug("A"), _doc("A-restricted")], "doc:A-restricted"),
    "B": ([_slug("B"), _doc("B")], "doc:B"),
    "A with B's document": ([_slug("A"), _doc("B")], None),
    "missing": (["no-such-base", MISSING], None),
}
MEMBERSHIPS = {
    "A": ([_slug("A"), lambda w: w.memberships["A"]], "kb:A"),
    "B": ([_slug("B"), lambda w: w.memberships["B"]], "kb:B"),
    "A with B's membership": ([_slug("A"), lambda w: w.memberships["B"]], None),
    "missing": (["no-such-base", MISSING], None),
}
API_KEYS = {
    "owner's": ([lambda w: w.api_keys["owner"][0]], "key:owner"),
    "reader's": ([lambda w: w.api_keys["reader"][0]], "key:reader"),
    "missing": ([MISSING], None),
}
ANSWERS = {
    "owner-A": ([_answer("owner-A")], "conv:owner-A"),
    "reader-A": ([_answer("reader-A")], "conv:reader-A"),
    "owner-B": ([_answer("owner-B")], "conv:owner-B"),
    "missing": ([MISSING], None),
}


def _gap_log(world: World, name: str) -> Any:
    """A refused question of base `name` (a knowledge gap)."""
    from chat.models import QuestionLog

    return QuestionLog.objects.get_or_create(
        knowledge_base=world.kbs[name], question=REFUSED_QUESTION, defaults={"channel": "chat", "answered": False}
    )[0]


def _resolution(name: str) -> Callable[[World], int]:
    def make(world: World) -> int:
        from insights.models import GapResolution

        log = _gap_log(world, name)
        return GapResolution.objects.get_or_create(
            knowledge_base=world.kbs[name],
            signature=f"matrix-{name}",
            defaults={"question_ids": [log.pk], "central_question": log.question},
        )[0].pk

    return make


def _saved_case(name: str) -> Callable[[World], int]:
    def make(world: World) -> int:
        from insights.models import SavedCase

        document = world.docs["A-public" if name == "A" else "B"]
        return SavedCase.objects.create(
            knowledge_base=world.kbs[name], question="q", language="en", document=document, document_name="d"
        ).pk

    return make


RESOLUTIONS = {
    "A": ([_slug("A"), _resolution("A")], "kb:A"),
    "B": ([_slug("B"), _resolution("B")], "kb:B"),
    "A with B's resolution": ([_slug("A"), _resolution("B")], None),
    "missing": (["no-such-base", MISSING], None),
}
SAVED_CASES = {
    "A": ([_slug("A"), _saved_case("A")], "kb:A"),
    "B": ([_slug("B"), _saved_case("B")], "kb:B"),
    "A with B's case": ([_slug("A"), _saved_case("B")], None),
    "missing": (["no-such-base", MISSING], None),
}
# a case saved on a base (the URL) from one of its gap questions, expecting a document (the posted data)
CASE_DOCUMENTS = {
    "A-public": ([_slug("A")], "doc:A-public"),
    "A-restricted": ([_slug("A")], "doc:A-restricted"),
    "B": ([_slug("B")], "doc:B"),
    "A with B's document": ([_slug("A")], None),
    "missing": (["no-such-base"], None),
}


def _case_data(world: World, label: str) -> dict[str, Any]:
    base = "B" if label == "B" else "A"
    document = {"A-public": "A-public", "A-restricted": "A-restricted", "B": "B", "A with B's document": "B"}
    return {"log": _gap_log(world, base).pk, "document": world.docs[document.get(label, "A-public")].pk}


def _resolve_data(world: World, label: str) -> dict[str, Any]:
    return {"ids": str(_gap_log(world, label).pk) if label in world.kbs else str(MISSING), "note": "uploaded"}


def _page(url: str) -> Callable[[World], list[Case]]:
    """A page without an id: every signed-in user gets it, showing only what they may see."""
    return lambda world: [Case(user, "-", "GET", url, True) for user in USERS]


def _kb_url(name: str) -> Callable[..., str]:
    return lambda *args: reverse(name, args=args)


def _same_restriction(world: World, label: str) -> dict[str, Any]:
    # posted by the owner, it must leave every document as visible as it was (the matrix assumes so)
    return {"groups": [world.confidential.pk] if label == "A-restricted" else []}


HTTP_RULES: dict[str, Callable[[World], list[Case]] | str] = {
    "kb:list": _page("/kb/"),
    "kb:detail": _users_x(BASES, _kb_url("kb:detail")),
    "kb:documents": _users_x(BASES, _kb_url("kb:documents")),
    "kb:upload": _users_x(BASES, _kb_url("kb:upload"), method="POST", role="edit"),
    "kb:sharing": _users_x(BASES, _kb_url("kb:sharing"), role="manage"),
    "kb:member_set": _users_x(
        BASES,
        _kb_url("kb:member_set"),
        method="POST",
        role="manage",
        data=lambda w, label: {"kind": "user", "name": "owner", "role": "manager"},
    ),
    "kb:member_remove": _users_x(MEMBERSHIPS, _kb_url("kb:member_remove"), method="POST", role="manage"),
    "kb:restrict": _users_x(IN_BASE, _kb_url("kb:restrict"), method="POST", role="manage", data=_same_restriction),
    "chat:document_seen": _users_x(IN_BASE, _kb_url("chat:document_seen"), role="manage"),
    "kb:passage": _users_x(PASSAGES, _kb_url("kb:passage")),
    "insights:gaps": _users_x(BASES, _kb_url("insights:gaps"), role="manage"),
    "insights:gaps_csv": _users_x(BASES, _kb_url("insights:gaps_csv"), role="manage"),
    "insights:gap_resolve": _users_x(
        BASES, _kb_url("insights:gap_resolve"), method="POST", role="manage", data=_resolve_data
    ),
    "insights:gap_reopen": _users_x(RESOLUTIONS, _kb_url("insights:gap_reopen"), method="POST", role="manage"),
    "insights:gap_recheck": _users_x(RESOLUTIONS, _kb_url("insights:gap_recheck"), role="manage"),
    "insights:saved_case_create": _users_x(
        CASE_DOCUMENTS, _kb_url("insights:saved_case_create"), method="POST", role="manage", data=_case_data
    ),
    "insights:saved_case_delete": _users_x(
        SAVED_CASES, _kb_url("insights:saved_case_delete"), method="POST", role="manage"
    ),
    "kb:file": _users_x(DOCUMENTS, _kb_url("kb:file")),
    "chat:home": _page("/"),
    "chat:conversation": _users_x(CONVERSATIONS, _kb_url("chat:conversation")),
    "chat:feedback": _users_x(ANSWERS, _kb_url("chat:feedback"), method="POST", data=lambda w, label: {"rating": "1"}),
    "insights:analytics": _users_x(BASES, _kb_url("insights:analytics"), role="manage"),
    "insights:analytics_csv": _users_x(BASES, _kb_url("insights:analytics_csv"), role="manage"),
    "api:keys": _page("/account/api-keys/"),
    "api:revoke": _users_x(API_KEYS, _kb_url("api:revoke"), method="POST"),
    # Routes that open nothing of a base, and those with their own matrix elsewhere in this file:
    "set_language": "public: sets the interface language, no object",
    "javascript-catalog": "public: the interface's translations, no object",
    "api:models": "API key, not session: test_api_matrix",
    "api:model": "API key, not session: test_api_matrix",
    "api:chat_completions": "API key, not session: test_api_matrix",
    "api:embeddings": "API key, not session: test_api_matrix",
    "healthz": "public: service health, no object",
    "login": "public: the sign-in page",
    "logout": "public: signs out",
    "oidc_authentication_init": "public: single sign-on starts here (tests/test_sso.py)",
    "oidc_authentication_callback": "public: the identity provider's answer (tests/test_sso.py)",
    "oidc_logout": "public: signs out",
    "widget:frame": "widget: the key is public; test_widget_matrix",
    "widget:config": "widget: the key is public; test_widget_matrix",
    "widget:session": "widget: the key is public; test_widget_matrix",
    "widget:ticket": "widget: a visitor session of the key; test_widget_matrix",
    "widget:history": "widget: test_widget_matrix",
    "widget:passage": "widget: test_widget_matrix",
}


def _rule_for(route: Route) -> Callable[[World], list[Case]] | str | None:
    if route.name.startswith("admin:") or route.pattern.startswith("admin/"):
        return "admin: test_admin_matrix"
    return HTTP_RULES.get(route.name)


def test_every_http_route_has_a_rule():
    missing = [f"{r.name} ({r.pattern})" for r in http_routes() if _rule_for(r) is None]
    assert not missing, f"routes without an access rule in tests/test_authorization.py: {missing}"


def _secrets_hidden_from(user: str) -> list[str]:
    return [word for name, word in SECRETS.items() if name not in VISIBLE[user]]


def test_http_matrix(world, capsys):
    clients = {}
    for user in USERS:
        clients[user] = Client()
        clients[user].force_login(world.users[user])
    report = []
    for route in http_routes():
        rule = _rule_for(route)
        if not callable(rule):
            continue
        for case in rule(world):
            client = clients[case.user]
            response = client.post(case.url, case.data) if case.method == "POST" else client.get(case.url)
            body = b"".join(response.streaming_content) if response.streaming else response.content
            verdict = "allowed" if case.allowed else "denied"
            where = f"{route.name} {case.method} {case.url} as {case.user} ({case.label})"
            if case.allowed:
                assert response.status_code in (200, 302), f"{where}: {response.status_code}"
                if response.status_code == 302:
                    assert "/accounts/login/" not in response["Location"], where
            else:
                assert response.status_code == 404, f"{where}: {response.status_code}, expected 404"
            if not response.streaming and response.get("Content-Type", "").startswith("text/html"):
                text = body.decode()
                leaked = [word for word in _secrets_hidden_from(case.user) if word in text]
                assert not leaked, f"{where}: names {leaked}"
            report.append(f"{verdict:7} {response.status_code} {where}")
    with capsys.disabled():
        print(f"\nHTTP authorization matrix: {len(report)} requests")
        print("\n".join(report))
    covered = {line.split()[2] for line in report}
    assert covered == {name for name, rule in HTTP_RULES.items() if callable(rule)}


# ---- the OpenAI-compatible API: a key reads what its user may read


def test_api_matrix(world, capsys):
    """Each user's key against each base: denied pairs are 404 `model_not_found`; /v1/models lists exactly the
    readable bases; the restricted document reaches only the owner, through search as through listing."""
    client = Client()
    report = []
    for user in USERS:
        headers = {"Authorization": f"Bearer {world.api_keys[user][1]}"}
        listed = client.get("/v1/models", headers=headers).json()["data"]
        readable = {f"kb:{world.kbs[b].slug}" for b in ("A", "B") if f"kb:{b}" in VISIBLE[user]}
        assert {m["id"] for m in listed} == readable, user
        for base, slug in (("A", "alpha"), ("B", "beta"), ("missing", "no-such-base")):
            allowed = f"kb:{base}" in VISIBLE[user]
            model = f"kb:{slug}"
            asked = {"model": model, "messages": [{"role": "user", "content": REFUSED_QUESTION}]}
            for method, path, body in (
                ("GET", f"/v1/models/{model}", None),
                ("POST", "/v1/chat/completions", asked),
                ("POST", "/v1/embeddings", {"model": model, "input": "kettle"}),
            ):
                if body is None:
                    response = client.get(path, headers=headers)
                else:
                    response = client.post(path, body, content_type="application/json", headers=headers)
                where = f"{method} {path} {model} as {user}"
                if allowed:
                    assert response.status_code == 200, (where, response.content[:300])
                else:
                    assert response.status_code == 404, (where, response.status_code)
                    assert response.json()["error"]["code"] == "model_not_found", where
                    if f"kb:{base}" in SECRETS:
                        assert SECRETS[f"kb:{base}"] not in response.content.decode(), where
                report.append(f"{'allowed' if allowed else 'denied':7} {response.status_code} {where}")
    # The restricted document's words: retrieved for the owner, absent for the reader (sources and answer).
    question = {"model": "kb:alpha", "messages": [{"role": "user", "content": "When does the Zorblax committee meet?"}]}
    for user, sees in (("owner", True), ("reader", False)):
        headers = {"Authorization": f"Bearer {world.api_keys[user][1]}"}
        reply = client.post(
            "/v1/embeddings", {"model": "kb:alpha", "input": "x"}, content_type="application/json", headers=headers
        )
        assert reply.status_code == 200
        body = client.post("/v1/chat/completions", question, content_type="application/json", headers=headers).json()
        titles = {s["title"] for s in body["docent"]["sources"]}
        assert (SECRETS["doc:A-restricted"] in titles) is sees or (not sees and not titles), (user, body["docent"])
        if not sees:
            assert SECRETS["doc:A-restricted"] not in str(body) and "Zorblax committee" not in str(body["docent"])
    with capsys.disabled():
        print(f"\nAPI authorization matrix: {len(report)} requests")
        print("\n".join(report))


# ---- websockets


async def _socket(path: str, user: Any, headers: list[tuple[bytes, bytes]] | None = None):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path, headers=headers or [])
    communicator.scope["user"] = user
    connected, code = await communicator.connect()
    return communicator, connected, code


async def _ask(communicator, frame: dict[str, Any]) -> dict[str, Any]:
    await communicator.send_json_to({"type": "ask", "question": REFUSED_QUESTION, "conversation": None, **frame})
    while True:
        event = await communicator.receive_json_from(timeout=60)
        if event["type"] in ("done", "error"):
            return event


async def chat_cases(world: World) -> list[str]:
    """/ws/chat/: the ids travel in frames (base slug, conversation id)."""
    report = []
    for user in USERS:
        communicator, connected, _ = await _socket("/ws/chat/", world.users[user])
        assert connected
        for label, (args, needs) in BASES.items():
            slug = resolve(world, args)[0]
            event = await _ask(communicator, {"kb": slug})
            allowed = needs in VISIBLE[user]
            assert event["type"] == ("done" if allowed else "error"), (user, label, event)
            if not allowed:
                assert event["code"] == "unknown_kb"
            report.append(f"{'allowed' if allowed else 'denied':7} ws/chat/ kb={label} as {user}")
        for label, (args, needs) in CONVERSATIONS.items():
            conversation = resolve(world, args)[0]
            slug = world.kbs["B" if label.endswith("B") else "A"].slug
            event = await _ask(communicator, {"kb": slug, "conversation": conversation})
            allowed = needs in VISIBLE[user]
            assert event["type"] == ("done" if allowed else "error"), (user, label, event)
            if not allowed:
                assert event["code"] in ("unknown_kb", "unknown_conversation")
            report.append(f"{'allowed' if allowed else 'denied':7} ws/chat/ conversation={label} as {user}")
        await communicator.disconnect()
    return report


async def progress_cases(world: World) -> list[str]:
    report = []
    for user in USERS:
        for label, (args, needs) in BASES.items():
            slug = resolve(world, args)[0]
            communicator, connected, code = await _socket(f"/ws/kb/{slug}/", world.users[user])
            allowed = needs in VISIBLE[user]
            assert connected == allowed, (user, label, code)
            if not allowed:
                assert code == 4403
            else:
                await communicator.disconnect()
            report.append(f"{'allowed' if allowed else 'denied':7} ws/kb/{label}/ as {user}")
    return report


async def widget_socket_cases(world: World) -> list[str]:
    """A visitor's session opens its own key's socket only."""
    report = []
    session = tokens.session_issue(key=world.keys["A"].key, visitor_id=tokens.new_visitor_id(), origin=SHOP)
    headers = [(b"host", b"testserver"), (b"origin", SHOP.encode())]
    for label, key, allowed in (
        ("A", world.keys["A"].key, True),
        ("B with A's session", world.keys["B"].key, False),
        ("missing", "no-such-key", False),
    ):
        communicator = WebsocketCommunicator(
            URLRouter(websocket_urlpatterns), f"/ws/widget/{key}/?s={session}", headers=headers
        )
        connected, code = await communicator.connect()
        assert connected == allowed, (label, code)
        if connected:
            await communicator.disconnect()
        report.append(f"{'allowed' if allowed else 'denied':7} ws/widget/{label}/ as a visitor of A")
    return report


WEBSOCKET_RULES = {
    "ws/chat/": chat_cases,
    "ws/kb/<slug:slug>/": progress_cases,
    "ws/widget/<slug:key>/": widget_socket_cases,
}


def test_every_websocket_route_has_a_rule():
    missing = [r.pattern for r in websocket_routes() if r.pattern not in WEBSOCKET_RULES]
    assert not missing, f"websocket routes without an access rule in tests/test_authorization.py: {missing}"


async def test_websocket_matrix(django_user_model, capsys):
    world = await database_sync_to_async(build_world)(django_user_model)
    report = []
    for route in websocket_routes():
        report += await WEBSOCKET_RULES[route.pattern](world)
    with capsys.disabled():
        print(f"\nwebsocket authorization matrix: {len(report)} cases")
        print("\n".join(report))


# ---- the widget's HTTP routes: a visitor session of one key, never another's


def test_widget_matrix(world, client):
    key_a, key_b = world.keys["A"], world.keys["B"]
    visitor = tokens.new_visitor_id()
    session = tokens.session_issue(key=key_a.key, visitor_id=visitor, origin=SHOP)
    own = Conversation.objects.create(knowledge_base=world.kbs["A"], title="visitor's")
    WidgetConversation.objects.create(conversation=own, key=key_a, visitor_id=visitor)
    for name in ("A-public", "A-restricted"):
        ShownChunk.objects.create(key=key_a, visitor_id=visitor, chunk=world.chunks[name])
    cases = [
        (reverse("widget:history", args=[key_a.key, own.pk]), True),
        (reverse("widget:history", args=[key_a.key, world.conversations["owner-A"].pk]), False),
        (reverse("widget:history", args=[key_b.key, own.pk]), False),
        (reverse("widget:passage", args=[key_a.key, world.chunks["A-public"].pk]), True),
        # shown once, then restricted: visitors see unrestricted documents only
        (reverse("widget:passage", args=[key_a.key, world.chunks["A-restricted"].pk]), False),
        (reverse("widget:passage", args=[key_a.key, world.chunks["B"].pk]), False),
        (reverse("widget:passage", args=[key_b.key, world.chunks["A-public"].pk]), False),
        (reverse("widget:frame", args=["no-such-key"]), False),
    ]
    for url, allowed in cases:
        response = client.get(url, {"s": session}, HTTP_SEC_FETCH_DEST="iframe", HTTP_REFERER=SHOP + "/")
        assert response.status_code == (200 if allowed else 404), (url, response.status_code)
        assert SECRETS["doc:A-restricted"].encode() not in response.content


# ---- the admin: staff see the objects of the bases they are given, others answer as missing ones


def test_admin_matrix(world, django_user_model):
    from django.contrib import admin
    from django.contrib.auth.models import Permission

    staff = world.users["reader"]
    staff.is_staff = True
    staff.save()
    staff.user_permissions.set(Permission.objects.all())
    membership_set(knowledge_base=world.kbs["A"], role="manager", actor=None, user=staff)
    client = Client()
    client.force_login(staff)
    visible = {
        KnowledgeBase: ([world.kbs["A"].pk], [world.kbs["B"].pk]),
        Document: ([world.docs["A-public"].pk], [world.docs["A-restricted"].pk, world.docs["B"].pk]),
        Conversation: ([world.conversations["reader-A"].pk], [world.conversations["owner-B"].pk]),
        Message: ([world.answers["owner-A"].pk], [world.answers["owner-B"].pk]),
        WidgetKey: ([world.keys["A"].pk], [world.keys["B"].pk]),
    }
    exempt = {"auth.user", "auth.group"}  # Django's own: granted through Django's permissions
    unruled = []
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label_lower
        if model not in visible:
            # other registered models must at least narrow their list to the staff user's bases
            if label not in exempt and not _narrows(model_admin):
                unruled.append(label)
            continue
        allowed, denied = visible[model]
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        changelist = client.get(reverse(f"{prefix}_changelist"))
        assert changelist.status_code == 200
        missing_view = client.get(reverse(f"{prefix}_change", args=[MISSING]))
        for pk in allowed:
            assert client.get(reverse(f"{prefix}_change", args=[pk])).status_code == 200, (label, pk)
        for pk in denied:
            response = client.get(reverse(f"{prefix}_change", args=[pk]))
            assert (response.status_code, response.get("Location")) == (
                missing_view.status_code,
                missing_view.get("Location"),
            ), (label, pk)
        for secret in (SECRETS["kb:B"], SECRETS["doc:A-restricted"], SECRETS["doc:B"]):
            assert secret not in changelist.content.decode(), (label, secret)
    assert not unruled, f"admin models without a per-base queryset: {unruled}"


def _narrows(model_admin: Any) -> bool:
    from django.contrib import admin

    return type(model_admin).get_queryset is not admin.ModelAdmin.get_queryset
