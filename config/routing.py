"""Websocket routes (`/ws`, `/stream`); consumers live in their apps."""

websocket_urlpatterns: list = []
