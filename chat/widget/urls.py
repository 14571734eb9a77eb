from django.urls import path

from chat.widget import views

app_name = "widget"

# Keys are url-safe tokens: the slug converter's alphabet.
urlpatterns = [
    path("<slug:key>/", views.frame, name="frame"),
    path("<slug:key>/config/", views.config, name="config"),
    path("<slug:key>/session/", views.session, name="session"),
    path("<slug:key>/conversations/<int:conversation_id>/", views.history, name="history"),
    path("<slug:key>/ticket/", views.ticket, name="ticket"),
    path("<slug:key>/passage/<int:chunk_id>/", views.passage, name="passage"),
]
