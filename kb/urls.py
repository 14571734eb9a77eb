from django.urls import path

from kb import views

app_name = "kb"

urlpatterns = [
    path("", views.kb_list, name="list"),
    path("<slug:slug>/", views.kb_detail, name="detail"),
    path("<slug:slug>/documents/", views.kb_documents, name="documents"),
    path("<slug:slug>/upload/", views.kb_upload, name="upload"),
    path("documents/<int:document_id>/passage/<int:chunk_id>/", views.passage, name="passage"),
    path("documents/<int:document_id>/file/", views.document_file, name="file"),
]
