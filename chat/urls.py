from django.urls import path

from chat import views

app_name = "chat"

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<int:conversation_id>/", views.home, name="conversation"),
    path("messages/<int:message_id>/feedback/", views.feedback, name="feedback"),
]
