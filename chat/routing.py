from django.urls import path

from chat.consumers import ChatConsumer
from chat.widget.consumers import WidgetConsumer
from kb.consumers import DocumentProgressConsumer

websocket_urlpatterns = [
    path("ws/chat/", ChatConsumer.as_asgi()),
    path("ws/widget/<slug:key>/", WidgetConsumer.as_asgi()),
    path("ws/kb/<slug:slug>/", DocumentProgressConsumer.as_asgi()),
]
