"""URL routes of the example project."""

from django.contrib import admin
from django.urls import path

from mysite import views

urlpatterns = [
    path("", views.hello, name="hello"),
    path("environ/", views.environ_view, name="environ"),
    path("form/", views.form, name="form"),
    path("upload/", views.upload, name="upload"),
    path("stream/", views.stream, name="stream"),
    path("download/", views.download, name="download"),
    path("admin/", admin.site.urls),
]
