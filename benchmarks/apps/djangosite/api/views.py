"""The JSON view the Django scenario times."""

from django.http import JsonResponse


def hello_json(request):
    return JsonResponse({"message": "Hello, World!"})
