"""The gateway with a bare Flask JSON endpoint beside it at /bare: the HTTP benchmark's baseline."""

from flask import Flask, jsonify
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from gateway.entrypoints.app import create_app

bare = Flask("bare")


@bare.get("/")
def hello():  # type: ignore[no-untyped-def]
    return jsonify(status="ok")


app = DispatcherMiddleware(create_app(), {"/bare": bare})
