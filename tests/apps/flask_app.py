"""A small real Flask application for the framework tests."""

from __future__ import annotations

import hashlib

from flask import Flask, Response, jsonify, make_response, redirect, request, stream_with_context, url_for

app = Flask(__name__)


@app.get("/")
def index():
    return "flask says hi"


@app.post("/form")
def form():
    return jsonify(name=request.form.get("name"), tags=request.form.getlist("tag"),
                   content_type=request.content_type)


@app.post("/json")
def json_echo():
    data = request.get_json()
    return jsonify(received=data, doubled=[x * 2 for x in data.get("numbers", [])])


@app.post("/upload")
def upload():
    f = request.files["file"]
    data = f.read()
    return jsonify(filename=f.filename, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                   note=request.form.get("note"))


@app.get("/redirect")
def go():
    return redirect(url_for("target", src="redirect"))


@app.post("/post-redirect")
def post_redirect():
    return redirect(url_for("target", src="post"), code=303)


@app.get("/target")
def target():
    return jsonify(src=request.args.get("src"), path=request.path)


@app.get("/set-cookie")
def set_cookie():
    resp = make_response("cookie set")
    resp.set_cookie("flavour", request.args.get("v", "oatmeal"), httponly=True)
    resp.set_cookie("second", "two")
    return resp


@app.get("/get-cookie")
def get_cookie():
    return jsonify(cookies=dict(request.cookies))


@app.get("/stream")
def stream():
    n = int(request.args.get("n", "10"))

    def gen():
        for i in range(n):
            yield f"row {i}\n"
    return Response(stream_with_context(gen()), mimetype="text/plain")


@app.route("/method", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
def method():
    return jsonify(method=request.method, data=request.get_data(as_text=True))


@app.get("/error")
def error():
    raise RuntimeError("flask-view-error")
