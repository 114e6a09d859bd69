"""Request and response serializers of the trading API."""

import copy
from decimal import Decimal

from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.inputs import DECIMAL_PATTERN, QueryParams, plain_decimal
from trading.models import Event, Order, Position, Trade, venue_ref


class DecimalOut(serializers.DecimalField):
    """Decimals leave as strings without trailing zeros ("60009.5", not "60009.500000000000000000")."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("normalize_output", True)
        super().__init__(*args, **kwargs)


class ModelSerializer(serializers.ModelSerializer):
    serializer_field_mapping = serializers.ModelSerializer.serializer_field_mapping | {models.DecimalField: DecimalOut}


class FlatRequestSerializer(serializers.Serializer):
    """A request body of plain fields (no nested serializers, no child fields), validated on
    every write. DRF deep-copies the declared fields for every serializer instance, which runs
    each field's __init__ again (about a third of a millisecond for the trade body); for plain
    fields a shallow copy is enough: binding writes to the copy only, and what the copies share
    (validators, choices, error messages) is only read while validating."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, field in cls._declared_fields.items():
            if isinstance(field, serializers.BaseSerializer) or hasattr(field, "child"):
                raise TypeError(f"{cls.__name__}.{name}: nested fields need DRF's deep copy")

    def get_fields(self):
        declared = self._declared_fields.items()
        data = getattr(self, "initial_data", None)
        if type(data) is dict:  # a JSON body (not a form: an absent checkbox means False there)
            # only the fields it gives, or that are required or have a default: for the others
            # DRF would copy and bind the field, run its validation and be told to skip it (most
            # of the trade body's 18 fields, about half of its validation time)
            declared = [
                (name, field)
                for name, field in declared
                if name in data or field.required or field.default is not serializers.empty
            ]
        return {name: copy.copy(field) for name, field in declared}

    def to_internal_value(self, data):
        """Unknown fields are refused (400 `validation_error`, each named in `details`): a
        misspelt `stop_price` must not open a trade without its stop."""
        if hasattr(data, "keys"):
            unknown = sorted(set(data.keys()) - set(self._declared_fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "number"},
            {"type": "string", "format": "decimal", "pattern": DECIMAL_PATTERN},
        ],
        "description": "a JSON number or a decimal string of ASCII digits",
    }
)
class Amount(serializers.DecimalField):
    """An amount: a JSON number, or a string of ASCII digits with an optional minus and point
    ("1000", "1000.5", 1000.0). Refused: booleans, exponents, "1_000", other scripts' digits,
    surrounding spaces, NaN and infinities (Python's Decimal would take all of these)."""

    def to_internal_value(self, data):
        if isinstance(data, str) and len(data) > self.MAX_STRING_LENGTH:
            self.fail("max_string_length")
        try:
            data = plain_decimal(data)
        except ValueError:
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({"oneOf": [{"type": "boolean"}, {"type": "string", "enum": ["long", "short"]}]})
class DirectionField(serializers.Field):
    """`true` / `"long"` → long, `false` / `"short"` → short (the seed API's bool, or our words)."""

    default_error_messages = {"invalid": 'Give true (long), false (short), "long" or "short".'}

    def to_internal_value(self, data):
        if data is True or data == "long":
            return "long"
        if data is False or data == "short":
            return "short"
        self.fail("invalid")

    def to_representation(self, value):
        return value


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "minimum": 0, "maximum": 4},
            {"type": "string", "enum": ["", "crypto", "forex", "commodity", "index", "stock", "0", "1", "2", "3", "4"]},
        ]
    }
)
class AssetTypeField(serializers.Field):
    """The seed API's integer asset type (0 crypto, 1 forex, 2 commodity, 3 index, 4 stock) or a
    category name; "" for none. Becomes the category name."""

    default_error_messages = {"invalid": "Give 0–4 (crypto, forex, commodity, index, stock) or the category name."}

    def to_internal_value(self, data):
        from providers.markets import ASSET_TYPES, asset_type_category

        if data is None or data == "":
            return ""
        if isinstance(data, bool) or not isinstance(data, (int, str)):
            self.fail("invalid")
        category = asset_type_category(data)
        if category not in ASSET_TYPES.values():
            self.fail("invalid")
        return category

    def to_representation(self, value):
        return value


PRICE = {"max_digits": 28, "decimal_places": 8, "required": False, "allow_null": True, "min_value": Decimal("0")}


class TradeOpenRequest(FlatRequestSerializer):
    asset = serializers.CharField(
        max_length=32,
        help_text="our market name (BTC-USD), an alias (BTCUSD, BTCUSDT, BTC/USD) or the base symbol (BTC) "
        "with `asset_type`",
    )
    asset_type = AssetTypeField(
        required=False, default="", help_text="0 crypto, 1 forex, 2 commodity, 3 index, 4 stock"
    )
    direction = DirectionField(help_text='true or "long"; false or "short"')
    order_type = serializers.ChoiceField(choices=Order.Type.values, default=Order.Type.MARKET)
    collateral = Amount(max_digits=28, decimal_places=8, required=False, allow_null=True)
    leverage = Amount(max_digits=12, decimal_places=4, required=False, allow_null=True)
    price = Amount(**PRICE, help_text="LIMIT price")
    stop_price = Amount(**PRICE, help_text="STOP_LOSS level, or a stop-loss attached to an open")
    take_profit_price = Amount(**PRICE)
    trailing_stop_distance = Amount(**PRICE)
    trailing_stop_percentage = Amount(**PRICE)
    oco_stop_price = Amount(**PRICE)
    oco_take_profit_price = Amount(**PRICE)
    slippage_percentage = Amount(
        max_digits=8,
        decimal_places=4,
        required=False,
        allow_null=True,
        min_value=Decimal("0"),
        help_text="max slippage accepted, in percent (default: the risk limit)",
    )
    reduce_only = serializers.BooleanField(required=False, default=False)
    pair_id = serializers.CharField(
        max_length=64, required=False, allow_blank=True, help_text="protective/reduce-only: the trade"
    )
    trade_index = serializers.CharField(max_length=64, required=False, allow_blank=True)
    client_order_id = serializers.CharField(max_length=64, required=False, allow_blank=True, allow_null=True)


class TradeCloseRequest(FlatRequestSerializer):
    percentage = Amount(
        max_digits=7,
        decimal_places=4,
        required=False,
        allow_null=True,
        min_value=Decimal("0.0001"),
        max_value=Decimal("100"),
        help_text="share of the trade to close, in percent (default 100)",
    )
    client_order_id = serializers.CharField(max_length=64, required=False, allow_blank=True, allow_null=True)


class TradeProtectionRequest(FlatRequestSerializer):
    stop_loss_price = Amount(**PRICE, help_text="null removes the stop-loss")
    take_profit_price = Amount(**PRICE, help_text="null removes the take-profit")


class OrderPlacedResponse(serializers.Serializer):
    """The answer of a trade open / close: 202 while the order is pending (`status: "pending"`),
    or with its outcome when the request waited for it (docs/api.md, trading/api/outcome.py)."""

    order_id = serializers.IntegerField()
    status = serializers.CharField(
        help_text='"pending" (202), "success" (open filled, 201) or "closed" (close filled, 200)'
    )
    order_status = serializers.CharField(help_text="the order's own status (ACCEPTED, FILLED, ...)")
    order_type = serializers.CharField()
    asset = serializers.CharField()
    direction = serializers.CharField()
    pair_id = serializers.IntegerField(allow_null=True, help_text="the venue's pair id (null until known)")
    trade_index = serializers.IntegerField(allow_null=True, help_text="the venue's trade index (null until known)")
    transaction_hash = serializers.CharField(allow_blank=True)
    client_order_id = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


def order_placed_data(order: Order) -> dict:
    return {
        "order_id": order.pk,
        "status": "pending",
        "order_status": order.status,
        "order_type": order.order_type,
        "asset": order.asset,
        "direction": order.side,
        "pair_id": venue_ref(order.pair_id),
        "trade_index": venue_ref(order.trade_index),
        "transaction_hash": order.transaction_hash,
        "client_order_id": order.client_order_id,
        "created_at": order.created_at.isoformat(),
    }


@extend_schema_field({"type": "integer", "nullable": True})
class VenueRef(serializers.Field):
    """A venue's pair id / trade index, read-only, as the seed's integer (null while unknown)."""

    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value):
        return venue_ref(value)


class OrderSerializer(ModelSerializer):
    direction = serializers.CharField(source="side")
    pair_id = VenueRef()
    trade_index = VenueRef()
    trade_id = serializers.IntegerField(allow_null=True)
    parent_id = serializers.IntegerField(allow_null=True)
    wallet_id = serializers.IntegerField(allow_null=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "status",
            "order_type",
            "origin",
            "provider",
            "asset",
            "asset_type",
            "direction",
            "collateral",
            "leverage",
            "quantity",
            "price",
            "stop_price",
            "take_profit_price",
            "trailing_stop_distance",
            "trailing_stop_percentage",
            "oco_stop_price",
            "oco_take_profit_price",
            "reduce_only",
            "close_fraction",
            "max_slippage",
            "reference_price",
            "client_order_id",
            "error_code",
            "error_message",
            "pair_id",
            "trade_index",
            "transaction_hash",
            "venue_order_id",
            "filled_quantity",
            "filled_price",
            "fee",
            "realized_pnl",
            "trade_id",
            "parent_id",
            "wallet_id",
            "wallet_address",
            "triggered_at",
            "filled_at",
            "created_at",
            "updated_at",
        ]


class TimelineEventSerializer(ModelSerializer):
    class Meta:
        model = Event
        fields = ["id", "occurred_at", "topic", "aggregate_type", "aggregate_id", "causation_id", "actor", "payload"]


class OrderDetailSerializer(OrderSerializer):
    events = serializers.SerializerMethodField()

    class Meta(OrderSerializer.Meta):
        fields = [*OrderSerializer.Meta.fields, "events"]

    def get_events(self, order) -> list[dict]:
        from trading.selectors import order_timeline

        return TimelineEventSerializer(order_timeline(order=order), many=True).data


class _MarkedAtLatestPrice:
    """Open trades and positions are shown marked at the latest cached price of their asset at
    their venue (the view puts `{(venue, asset): price}` in the context as `marks`): current_price and
    unrealized_pnl. The rows keep the mark of their last fill; a closed one shows its own."""

    entry_field = size_field = ""

    def to_representation(self, instance):
        data = super().to_representation(instance)
        price = self.context.get("marks", {}).get((instance.provider, instance.asset))
        if price is not None and instance.status == "open":
            from trading.services.positions import unrealized_pnl

            pnl = unrealized_pnl(
                side=instance.side,
                entry_price=getattr(instance, self.entry_field),
                price=price,
                size=getattr(instance, self.size_field),
            )
            data["current_price"] = self.fields["current_price"].to_representation(price)
            data["unrealized_pnl"] = self.fields["unrealized_pnl"].to_representation(pnl)
        return data


class TradeSerializer(_MarkedAtLatestPrice, ModelSerializer):
    direction = serializers.CharField(source="side")
    pair_id = VenueRef()
    trade_index = VenueRef()
    entry_field, size_field = "entry_price", "size"

    class Meta:
        model = Trade
        fields = [
            "id",
            "provider",
            "asset",
            "pair_id",
            "trade_index",
            "direction",
            "status",
            "collateral",
            "leverage",
            "size",
            "initial_size",
            "entry_price",
            "current_price",
            "unrealized_pnl",
            "realized_pnl",
            "margin",
            "liquidation_price",
            "stop_loss_price",
            "take_profit_price",
            "fees_paid",
            "funding_paid",
            "opened_at",
            "closed_at",
            "close_reason",
        ]


class PositionSerializer(_MarkedAtLatestPrice, ModelSerializer):
    direction = serializers.CharField(source="side")
    side = serializers.CharField(help_text="long or short (the seed API's name for direction)")
    size = DecimalOut(source="quantity", max_digits=38, decimal_places=18, help_text="= quantity")
    entry_price = DecimalOut(source="avg_entry_price", max_digits=38, decimal_places=18, help_text="= avg_entry_price")
    entry_field, size_field = "avg_entry_price", "quantity"
    trades = serializers.SerializerMethodField()

    class Meta:
        model = Position
        fields = [
            "id",
            "provider",
            "asset",
            "side",
            "size",
            "entry_price",
            "direction",
            "status",
            "quantity",
            "avg_entry_price",
            "current_price",
            "unrealized_pnl",
            "realized_pnl",
            "margin",
            "leverage",
            "liquidation_price",
            "fees_paid",
            "funding_paid",
            "opened_at",
            "closed_at",
            "trades",
        ]

    def get_trades(self, position) -> list[dict]:
        trades = [t for t in position.trades.all() if t.status == Trade.Status.OPEN or position.status == "closed"]
        return TradeSerializer(trades, many=True, context=self.context).data


class OrderFilter(QueryParams):
    status = serializers.ChoiceField(choices=Order.Status.values, required=False)
    asset = serializers.CharField(max_length=32, required=False)
    type = serializers.ChoiceField(choices=Order.Type.values, required=False)
    origin = serializers.ChoiceField(choices=Order.Origin.values, required=False)


class PositionFilter(QueryParams):
    status = serializers.ChoiceField(choices=[*Position.Status.values, "all"], required=False, default="open")


class PriceSerializer(serializers.Serializer):
    pair = serializers.CharField(help_text="the pair as asked for (BTCUSDT, BTC-USD, ...)")
    symbol = serializers.CharField(help_text="our market name (BTC-USD)")
    asset = serializers.CharField(help_text="the base asset (BTC)")
    quote = serializers.CharField(help_text="the quote currency (USD)")
    price = DecimalOut(max_digits=38, decimal_places=18)
    bid = DecimalOut(max_digits=38, decimal_places=18, allow_null=True)
    ask = DecimalOut(max_digits=38, decimal_places=18, allow_null=True)
    timestamp = serializers.DateTimeField()
    source = serializers.CharField(help_text="where the price came from: paper (the walk), manual, admin, ostium, ...")
    venue = serializers.CharField(help_text="whose price it is: the venue the pair routes to (paper, ostium)")


def price_data(tick, pair: str | None = None) -> dict:
    base, _, quote = tick.symbol.partition("-")
    return {
        "pair": pair or tick.symbol,
        "symbol": tick.symbol,
        "asset": base,
        "quote": quote,
        "price": tick.price,
        "bid": tick.bid,
        "ask": tick.ask,
        "timestamp": tick.timestamp,
        "source": tick.source,
        "venue": tick.venue,
    }


class PriceQuery(QueryParams):
    use_cache = serializers.BooleanField(required=False, default=True)


class PricesQuery(PriceQuery):
    pairs = serializers.CharField(
        required=False,
        help_text="comma-separated pair names, e.g. BTC-USD,ETHUSDT,EURUSD (1 to 50); without it, every market",
    )


class PricesResponse(serializers.Serializer):
    prices = PriceSerializer(many=True)
    unknown = serializers.ListField(child=serializers.CharField(), help_text="names asked for that are no market")
    unavailable = serializers.ListField(
        child=serializers.CharField(), help_text="markets asked for that have no price now"
    )
