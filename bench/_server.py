"""Bench-only server pieces: timing middleware, header auth, the single-INSERT baseline."""

import json
import os
import time

from django.db import connection
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

BASELINE_TABLE = "bench_baseline"
CREATE_BASELINE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {BASELINE_TABLE} (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL,
    body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


class ServerTimingMiddleware:
    """`Server-Timing: app;dur=<ms>`: the time Django spent on the request (middleware + view);
    `X-Bench-Pid`: which server process answered (the load generator spreads its clients)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.pid = str(os.getpid())

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        response["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.3f}"
        response["X-Bench-Pid"] = self.pid
        return response


class BaselineBody(serializers.Serializer):
    asset = serializers.CharField(max_length=32)
    direction = serializers.ChoiceField(choices=["long", "short"])
    collateral = serializers.DecimalField(max_digits=28, decimal_places=8)
    leverage = serializers.DecimalField(max_digits=12, decimal_places=4)


class Baseline(APIView):
    """The same request body, validated, and one INSERT."""

    def post(self, request):
        body = BaselineBody(data=request.data)
        body.is_valid(raise_exception=True)
        with connection.cursor() as cur:
            cur.execute(
                f"INSERT INTO {BASELINE_TABLE} (user_id, body) VALUES (%s, %s) RETURNING id",
                [request.user.pk, json.dumps(request.data)],
            )
            (row_id,) = cur.fetchone()
        return Response({"id": row_id}, status=201)
