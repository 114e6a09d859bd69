"""Our own subgraph queries validate whatever scalar type the real schema gives a field the
SDK reads but never filters on (checked against the localnet's schema, built with each type)."""

from __future__ import annotations

import pytest
from graphql import build_schema, parse, validate

from providers.ostium.client import closes_query
from providers.ostium.localnet import subgraph

TYPED_VARIABLE = """
    query Closes($trade: BigInt) {
      orders(where: {tradeID: $trade, orderAction: "Close", isPending: false}) { id }
    }
"""


def _schema_with_trade_id(monkeypatch, gql_type: str):
    fields = [(name, gql_type if name == "tradeID" else t) for name, t in subgraph.ENTITIES["Order"]]
    monkeypatch.setitem(subgraph.ENTITIES, "Order", fields)
    return build_schema(subgraph.build_sdl())


@pytest.mark.parametrize("gql_type", ["BigInt", "ID", "String"])
def test_the_closes_query_validates_whatever_type_trade_id_has(monkeypatch, gql_type):
    schema = _schema_with_trade_id(monkeypatch, gql_type)
    assert validate(schema, parse(closes_query("17"))) == []
    if gql_type != "BigInt":  # what a typed variable would have met
        assert validate(schema, parse(TYPED_VARIABLE))


def test_the_closes_query_takes_only_a_trade_id():
    with pytest.raises(ValueError):
        closes_query('1"} ) { id } x: orders(where: {id: "2')
