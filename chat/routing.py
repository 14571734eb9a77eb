from django.urls import path

from chat.consumers import ChatConsumer
from chat.widget.consumers import WidgetConsumer

websocket_urlpatterns = [
    path("ws/chat/", ChatConsumer.as_asgi()),
    path("ws/widget/<slug:key>/", WidgetConsumer.as_asgi()),
]
