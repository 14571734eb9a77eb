"""A user's own API keys page: create (the secret is shown once, on the page that created it) and revoke."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from api.selectors import api_keys_of
from api.services import api_key_create, api_key_revoke
from kb.models import KnowledgeBase
from kb.selectors import knowledge_bases_for_user


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label=_("Name"), max_length=100, required=False, help_text=_("What the key is for, e.g. “Slack bot”.")
    )
    knowledge_bases = forms.ModelMultipleChoiceField(
        label=_("Knowledge bases"),
        queryset=KnowledgeBase.objects.none(),  # the user's bases: set per form below
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: every knowledge base you may read, now and later."),
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["knowledge_bases"]
        assert isinstance(field, forms.ModelMultipleChoiceField)
        field.queryset = knowledge_bases_for_user(user=user).order_by("name")


@login_required
def keys(request: HttpRequest) -> HttpResponse:
    created = None
    if request.method == "POST":
        form = ApiKeyForm(request.POST, user=request.user)
        if form.is_valid():
            _, created = api_key_create(
                user=request.user, knowledge_bases=form.cleaned_data["knowledge_bases"], name=form.cleaned_data["name"]
            )
            form = ApiKeyForm(user=request.user)
    else:
        form = ApiKeyForm(user=request.user)
    context = {
        "form": form,
        "created": created,
        "keys": api_keys_of(user=request.user),
        "base_url": request.build_absolute_uri("/v1"),
        "example_model": knowledge_bases_for_user(user=request.user)
        .order_by("slug")
        .values_list("slug", flat=True)
        .first()
        or "SLUG",
    }
    response = render(request, "api/keys.html", context)
    response["Cache-Control"] = "no-store"  # the page may hold a new secret
    return response


@login_required
@require_POST
def revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    if api_key_revoke(user=request.user, key_id=key_id) is None:
        raise Http404
    return redirect("api:keys")
