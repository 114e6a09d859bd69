import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

from config.handler import ASGIHandler  # noqa: E402

django_asgi_app = ASGIHandler()  # build Django first, then the router

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from config.inputs import BodySizeLimit  # noqa: E402
from config.logging import adopt_server_access_log  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402
from trading.realtime.auth import SessionOriginValidator, websocket_auth_stack  # noqa: E402

adopt_server_access_log()

application = ProtocolTypeRouter(
    {
        "http": BodySizeLimit(django_asgi_app),  # 413 before Django spools a body over the limit
        # the session user, overridden by a bearer token (Authorization header, subprotocol
        # `bearer, <jwt>` or query `token`) when one is given; the Origin is checked against
        # ALLOWED_HOSTS for cookie sessions only
        "websocket": SessionOriginValidator(websocket_auth_stack(URLRouter(websocket_urlpatterns))),
    }
)

from django.urls import get_resolver  # noqa: E402

from config.gc_freeze import long_lived_freeze  # noqa: E402

_ = get_resolver().url_patterns  # the URLconf and its views imported now, not by the first request
long_lived_freeze()  # what was loaded lives as long as the process (config/gc_freeze.py)
