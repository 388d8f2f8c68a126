"""A small real Django application configured in a single module (no project scaffold)."""

from __future__ import annotations

import hashlib
import json

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="luath-test-not-secret",
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        INSTALLED_APPS=[],
        USE_TZ=True,
        DATABASES={},
        LOGGING_CONFIG=None,
    )
    django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import (HttpResponse, HttpResponseRedirect, JsonResponse,  # noqa: E402
                         StreamingHttpResponse)
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


def index(request):
    return HttpResponse("django says hi", content_type="text/plain")


@csrf_exempt
def form(request):
    return JsonResponse({"name": request.POST.get("name"), "tags": request.POST.getlist("tag"),
                         "content_type": request.content_type, "method": request.method})


@csrf_exempt
def json_echo(request):
    data = json.loads(request.body)
    return JsonResponse({"received": data, "doubled": [x * 2 for x in data.get("numbers", [])]})


@csrf_exempt
def upload(request):
    f = request.FILES["file"]
    data = f.read()
    return JsonResponse({"filename": f.name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                         "note": request.POST.get("note")})


def go(request):
    return HttpResponseRedirect("/target?src=redirect")


@csrf_exempt
def post_redirect(request):
    resp = HttpResponseRedirect("/target?src=post")
    resp.status_code = 303
    return resp


def target(request):
    return JsonResponse({"src": request.GET.get("src"), "path": request.path})


def set_cookie(request):
    resp = HttpResponse("cookie set", content_type="text/plain")
    resp.set_cookie("flavour", request.GET.get("v", "oatmeal"), httponly=True)
    resp.set_cookie("second", "two")
    return resp


def get_cookie(request):
    return JsonResponse({"cookies": dict(request.COOKIES)})


def stream(request):
    n = int(request.GET.get("n", "10"))
    return StreamingHttpResponse((f"row {i}\n" for i in range(n)), content_type="text/plain")


@csrf_exempt
def method(request):
    return JsonResponse({"method": request.method, "data": request.body.decode()})


def error(request):
    raise RuntimeError("django-view-error")


urlpatterns = [
    path("", index),
    path("form", form),
    path("json", json_echo),
    path("upload", upload),
    path("redirect", go),
    path("post-redirect", post_redirect),
    path("target", target),
    path("set-cookie", set_cookie),
    path("get-cookie", get_cookie),
    path("stream", stream),
    path("method", method),
    path("error", error),
]

application = get_wsgi_application()
app = application
