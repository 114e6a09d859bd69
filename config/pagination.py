"""The API's pagination (settings.REST_FRAMEWORK["DEFAULT_PAGINATION_CLASS"]): DRF's
limit/offset, except that a `limit` or `offset` that is not a plain non-negative number
(`?offset=null`, `?limit=-3`, `?limit=`, `?limit=1_0`) is a 400 instead of silently read as
the default. A `limit` above `max_limit` (500) is read as 500, DRF's own convention, so one
request can never ask for a whole table."""

from __future__ import annotations

import re

from rest_framework import pagination
from rest_framework.exceptions import ValidationError

_DIGITS = re.compile(r"[0-9]{1,9}")


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    max_limit = 500

    def _number(self, request, name: str, *, minimum: int) -> int | None:
        raw = request.query_params.get(name)
        if raw is None:
            return None
        if not _DIGITS.fullmatch(raw) or int(raw) < minimum:
            raise ValidationError({name: [f"Must be a whole number of at least {minimum}."]})
        return int(raw)

    def get_limit(self, request):
        limit = self._number(request, self.limit_query_param, minimum=1)
        if limit is None:
            return self.default_limit
        return min(limit, self.max_limit) if self.max_limit else limit

    def get_offset(self, request):
        return self._number(request, self.offset_query_param, minimum=0) or 0


class NamedLimitOffsetPagination(LimitOffsetPagination):
    """The same limit/offset page, its rows under `results_key` (`{"positions": [...]}`, as the
    seed API names them) beside `count`, `limit`, `offset`, `next` and `previous`."""

    results_key = "results"

    def get_paginated_response(self, data):
        from rest_framework.response import Response

        return Response(
            {
                self.results_key: data,
                "count": self.count,
                "limit": self.limit,
                "offset": self.offset,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
            }
        )

    def get_paginated_response_schema(self, schema):
        page = super().get_paginated_response_schema(schema)
        properties = dict(page["properties"])
        properties[self.results_key] = properties.pop("results")
        properties["limit"] = {"type": "integer", "example": 50}
        properties["offset"] = {"type": "integer", "example": 0}
        return {**page, "properties": properties, "required": [self.results_key, "count", "limit", "offset"]}
