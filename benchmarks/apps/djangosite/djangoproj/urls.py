"""URL configuration: the one JSON endpoint."""

from django.urls import path

from api.views import hello_json

urlpatterns = [path("json", hello_json)]
