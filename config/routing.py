"""Websocket routes (`/ws`, `/stream`); consumers live in their apps. Protocols: docs/websockets.md."""

from django.urls import re_path

from trading.realtime.consumers import StreamConsumer, WsConsumer

websocket_urlpatterns: list = [
    re_path(r"^ws/?$", WsConsumer.as_asgi()),
    re_path(r"^stream/?$", StreamConsumer.as_asgi()),
]
