from django.urls import path

from chat import views

app_name = "chat"

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<int:conversation_id>/", views.home, name="conversation"),
    path("messages/<int:message_id>/feedback/", views.feedback, name="feedback"),
    # the sharing panel's "who saw it" (kb's page, chat's rows)
    path("kb/<slug:slug>/documents/<int:document_id>/seen/", views.document_seen, name="document_seen"),
]
