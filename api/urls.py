from django.urls import path

from api import account, views

app_name = "api"

urlpatterns = [
    path("v1/models", views.models, name="models"),
    path("v1/models/<path:model_id>", views.model, name="model"),
    path("v1/chat/completions", views.chat_completions, name="chat_completions"),
    path("v1/embeddings", views.embeddings, name="embeddings"),
    path("account/api-keys/", account.keys, name="keys"),
    path("account/api-keys/<int:key_id>/revoke/", account.revoke, name="revoke"),
]
