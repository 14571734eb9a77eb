from __future__ import annotations

from django import forms


class TicketForm(forms.Form):
    email = forms.EmailField(max_length=254)
    message = forms.CharField(max_length=5000, strip=True)
    conversation = forms.IntegerField(required=False, min_value=1)
