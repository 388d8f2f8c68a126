"""A small real Django application served through django.core.asgi (async views)."""

from __future__ import annotations

import asyncio
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

from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


async def index(request):
    return JsonResponse({"framework": "django", "hello": "world"})


async def item(request, item_id: int):
    return JsonResponse({"id": item_id, "q": request.GET.get("q")})


@csrf_exempt
async def json_echo(request):
    payload = json.loads(request.body)
    return JsonResponse({"received": payload, "doubled": [x * 2 for x in payload.get("numbers", [])]})


async def stream(request):
    n = int(request.GET.get("n", "10"))

    async def gen():
        for i in range(n):
            yield f"row {i}\n"
            if i % 50 == 0:
                await asyncio.sleep(0)
    return StreamingHttpResponse(gen(), content_type="text/plain")


@csrf_exempt
async def upload(request):
    f = request.FILES["file"]
    data = f.read()
    return JsonResponse({"filename": f.name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                         "note": request.POST.get("note")})


@csrf_exempt
async def form(request):
    return JsonResponse({"name": request.POST.get("name"), "tags": request.POST.getlist("tag")})


_background = set()  # strong references: the loop keeps only weak ones to tasks


async def _write_marker(path: str) -> None:
    await asyncio.sleep(1.0)
    with open(path, "w") as f:
        f.write("django-bg-done")


@csrf_exempt
async def bg(request):
    """Django has no background-task API: an async view starts a task on the running loop (the usual
    idiom), which must run on after the response has gone out."""
    task = asyncio.get_running_loop().create_task(_write_marker(request.GET["path"]))
    _background.add(task)
    task.add_done_callback(_background.discard)
    return JsonResponse({"scheduled": True})


async def error(request):
    raise RuntimeError("django-view-error")


async def text(request):
    return HttpResponse("plain django", content_type="text/plain")


urlpatterns = [
    path("", index),
    path("items/<int:item_id>", item),
    path("json", json_echo),
    path("stream", stream),
    path("upload", upload),
    path("form", form),
    path("bg", bg),
    path("error", error),
    path("text", text),
]

application = get_asgi_application()
app = application
