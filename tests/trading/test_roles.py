"""Roles are enforced in the services (not only by hidden buttons)."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from config.errors import ApplicationError
from tests.trading.roles import user_in
from trading.models import ControlState, Event, Order, RiskLimit, TradingState
from trading.services import operator

pytestmark = pytest.mark.django_db


def _denied(fn, **kwargs):
    with pytest.raises(ApplicationError) as err:
        fn(**kwargs)
    assert err.value.code == "PERMISSION_DENIED" and err.value.status_code == 403
    return err.value


def test_the_migration_creates_the_three_roles_with_their_permissions():
    perms = {g.name: {p.codename for p in g.permissions.all()} for g in Group.objects.all()}

    assert {"viewer", "operator", "risk_admin"} <= set(perms)
    assert "view_controlstate" in perms["viewer"] and "view_order" in perms["viewer"]
    assert not any(p.startswith(("add_", "change_", "delete_")) for p in perms["viewer"])
    assert {"arm_controlstate", "pause_controlstate", "force_close_position"} <= perms["operator"]
    assert "halt_all" not in perms["operator"] and "change_risklimit" not in perms["operator"]
    assert {"change_risklimit", "change_tradingstate", "halt_all"} <= perms["risk_admin"]
    assert "arm_controlstate" not in perms["risk_admin"]


def test_a_viewer_cannot_arm_and_nothing_changes():
    viewer = user_in("viewer")

    _denied(operator.control_state_change, actor=viewer, component="executor:paper", action="arm", reason="try")

    assert not ControlState.objects.get(component="executor:paper").armed
    assert not Event.objects.filter(topic="control.armed").exists()


def test_an_operator_arms_and_the_change_names_the_operator():
    op = user_in("operator", "alice")

    state = operator.control_state_change(actor=op, component="executor:paper", action="arm", reason="open")

    assert state.armed and state.changed_by == f"user:{op.pk}:alice"
    assert Event.objects.get(topic="control.armed").actor == f"user:{op.pk}:alice"


def test_an_operator_cannot_halt_everything_nor_set_trading_states_nor_edit_limits():
    op = user_in("operator")

    _denied(operator.desk_halt_all, actor=op, reason="panic")
    _denied(operator.trading_state_change, actor=op, scope_type="global", state="HALTED", reason="panic")
    _denied(operator.risk_limit_update, actor=op, instrument="", values={"max_notional": Decimal(1)})

    assert not TradingState.objects.exists() and not RiskLimit.objects.exists()


def test_a_risk_admin_halts_everything_but_cannot_arm():
    risk = user_in("risk_admin")
    operator.control_state_change(actor=user_in("operator"), component="executor:paper", action="arm", reason="trading")

    out = operator.desk_halt_all(actor=risk, reason="exchange incident")

    assert TradingState.objects.get(scope_type="global").state == "HALTED"
    assert not ControlState.objects.filter(armed=True).exists()
    assert set(out["disarmed"]) == set(ControlState.objects.values_list("component", flat=True))
    assert Event.objects.filter(topic="desk.halted").count() == 1
    _denied(operator.control_state_change, actor=risk, component="executor:paper", action="arm", reason="back")


def test_an_inactive_or_missing_actor_is_refused_even_with_the_permission(django_user_model):
    op = user_in("operator")
    op.is_active = False
    op.save()

    _denied(operator.control_state_change, actor=op, component="executor:paper", action="arm", reason="x")
    _denied(operator.control_state_change, actor=None, component="executor:paper", action="arm", reason="x")


def test_a_superuser_can_do_everything(django_user_model):
    root = django_user_model.objects.create_superuser(username="root", email="root@example.com", password="pw")

    operator.control_state_change(actor=root, component="signer:ostium", action="arm", reason="r")
    operator.trading_state_change(actor=root, scope_type="venue", scope_key="paper", state="REDUCE_ONLY", reason="r")
    operator.risk_limit_update(actor=root, instrument="btc-usd", values={"max_notional": Decimal("500")})
    operator.desk_halt_all(actor=root, reason="r")

    assert RiskLimit.objects.get(instrument="BTC-USD").max_notional == Decimal("500")


def test_force_close_needs_its_permission_and_goes_through_the_close_path(markets, trader, armed):
    from trading.services.execution import order_execute
    from trading.services.orders import order_place

    opened = order_place(user=trader, asset="BTC-USD", side="long", collateral=Decimal(100), leverage=Decimal(2))
    order_execute(order_id=opened.pk)
    trade = Order.objects.get(pk=opened.pk).trade
    _denied(operator.trade_force_close, actor=user_in("viewer"), trade=trade, reason="x")

    close = operator.trade_force_close(actor=user_in("operator"), trade=trade, reason="margin call")
    order_execute(order_id=close.pk)

    close.refresh_from_db()
    trade.refresh_from_db()
    assert close.status == "FILLED" and close.reduce_only and trade.status == "closed"
    requested = Event.objects.get(topic="trade.force_close_requested")
    accepted = Event.objects.get(correlation_id=close.correlation_id, topic="order.accepted")
    assert accepted.causation_id == requested.id and requested.payload["reason"] == "margin call"


def test_an_unknown_component_is_refused_not_created():
    with pytest.raises(ApplicationError) as err:
        operator.control_state_change(
            actor=user_in("operator"), component="executor:nowhere", action="arm", reason="typo"
        )

    assert err.value.code == "UNKNOWN_COMPONENT"
    assert not ControlState.objects.filter(component="executor:nowhere").exists()
