"""Request serializers whose fields are copied shallowly per instance (FlatRequestSerializer)."""

from decimal import Decimal as D

import pytest
from rest_framework import serializers

from trading.api.serializers import FlatRequestSerializer, TradeOpenRequest


def test_each_instance_validates_with_fields_of_its_own():
    good = TradeOpenRequest(data={"asset": "BTC-USD", "direction": "long", "collateral": "50", "leverage": "5"})
    bad = TradeOpenRequest(data={"asset": "BTC-USD", "direction": "sideways", "collateral": "x", "price": "-1"})
    assert good.is_valid() and not bad.is_valid()
    assert good.validated_data["collateral"] == D("50") and good.validated_data["order_type"] == "MARKET"
    assert set(bad.errors) == {"direction", "collateral", "price"}
    shared = good.fields.keys() & bad.fields.keys()
    assert {"asset", "direction", "collateral", "order_type"} <= shared
    for name in shared:
        field = good.fields[name]
        assert field is not bad.fields[name] and field is not TradeOpenRequest._declared_fields[name]
        assert field.parent is good and bad.fields[name].parent is bad
        assert field.field_name == name
    # a JSON body binds only what it gives, the required fields and those with a default
    assert "leverage" in good.fields and "leverage" not in bad.fields and "price" not in good.fields
    assert "reduce_only" in good.fields and "stop_price" not in good.fields
    assert set(TradeOpenRequest().fields) == set(TradeOpenRequest._declared_fields)  # no body: all (the schema)
    assert TradeOpenRequest._declared_fields["asset"].parent is None  # the declared fields stay unbound


def test_nested_fields_are_refused():
    with pytest.raises(TypeError, match="nested"):

        class WithList(FlatRequestSerializer):
            levels = serializers.ListField(child=serializers.DecimalField(max_digits=10, decimal_places=2))

    with pytest.raises(TypeError, match="nested"):

        class WithNested(FlatRequestSerializer):
            inner = TradeOpenRequest()
