"""Views of the example project: each exercises one part of the WSGI contract a real site relies on.

hello      plain text, the benchmark view
environ    a few environ values as JSON (what the server told Django)
form       GET renders a template with a CSRF token; POST (CSRF-checked by the middleware) echoes
upload     multipart upload: size and SHA-256 of every file, computed from Django's UploadedFile
stream     StreamingHttpResponse: numbered lines produced lazily
download   FileResponse of a file in MYSITE_DATA_DIR (Django hands it to wsgi.file_wrapper)
"""

import hashlib
import os

from django.conf import settings
from django.http import FileResponse, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render

DOWNLOAD_NAME = "download.bin"
DOWNLOAD_SIZE = 3 * 1024 * 1024 + 17  # not a multiple of any block size


def hello(request):
    return HttpResponse(b"Hello from Django", content_type="text/plain")


def environ_view(request):
    keys = ("SERVER_SOFTWARE", "REMOTE_ADDR", "wsgi.url_scheme", "wsgi.multithread", "SCRIPT_NAME", "PATH_INFO")
    return JsonResponse({key: request.META.get(key) for key in keys}
                        | {"file_wrapper": _qualname(request.META.get("wsgi.file_wrapper"))})


def form(request):
    if request.method == "POST":
        return JsonResponse({"name": request.POST.get("name", ""), "method": "POST"})
    return render(request, "mysite/form.html")


def upload(request):
    if request.method != "POST":
        return HttpResponse("POST a multipart form here", status=405)
    files = {}
    for field, uploaded in request.FILES.items():
        digest = hashlib.sha256()
        for chunk in uploaded.chunks():
            digest.update(chunk)
        files[field] = {"name": uploaded.name, "size": uploaded.size, "sha256": digest.hexdigest()}
    return JsonResponse({"files": files, "fields": dict(request.POST.items())})


def stream(request):
    count = int(request.GET.get("lines", "100"))
    return StreamingHttpResponse((f"line {i}\n" for i in range(count)), content_type="text/plain")


def download(request):
    return FileResponse(open(download_path(), "rb"), as_attachment=True, filename=DOWNLOAD_NAME)


def download_path():
    """The demo download file, created (deterministic content) on first use."""
    path = os.path.join(settings.DATA_DIR, DOWNLOAD_NAME)
    if not os.path.exists(path):
        os.makedirs(settings.DATA_DIR, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(download_bytes())
        os.replace(tmp, path)
    return path


def download_bytes():
    block = hashlib.sha256(b"fastwsgi").digest() * 32  # 1 KiB
    return (block * (DOWNLOAD_SIZE // len(block) + 1))[:DOWNLOAD_SIZE]


def _qualname(obj):
    return None if obj is None else f"{obj.__module__}.{obj.__qualname__}"
