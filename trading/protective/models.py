"""State of the protective-order engine: its heartbeat, per-asset price staleness and
per-position risk flags (so `price.stale`, `risk.near_liquidation` and `risk.stop_missing`
are raised once, on entering the condition, not every second)."""

from django.db import models
from django.utils import timezone


class EngineHeartbeat(models.Model):
    """One row per engine door: what its last run did. `beat`: each Beat run (every asset, the
    liquidation watch, stop coverage). `tick`: the tick listener, written at most once per
    PROTECTIVE_TICK_HEARTBEAT_SECONDS per process with the ticks evaluated since the previous
    write (`runs` counts ticks; `duration_ms` is the slowest of them; no pending-order count,
    liquidation or coverage figures)."""

    name = models.CharField(max_length=32, unique=True)
    last_run_at = models.DateTimeField(default=timezone.now)
    runs = models.PositiveBigIntegerField(default=0)
    assets_evaluated = models.PositiveIntegerField(default=0)
    orders_evaluated = models.PositiveIntegerField(default=0, help_text="pending orders on the evaluated assets")
    triggered = models.PositiveIntegerField(default=0)
    trailing_moved = models.PositiveIntegerField(default=0)
    duration_ms = models.DecimalField(max_digits=12, decimal_places=3, default=0)
    stale_assets = models.JSONField(default=list, blank=True)
    near_liquidation = models.PositiveIntegerField(default=0, help_text="positions flagged near liquidation")
    stop_missing = models.PositiveIntegerField(default=0, help_text="positions flagged without a working stop")
    total_triggered = models.PositiveBigIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        app_label = "trading"
        ordering = ["name"]

    def __str__(self):
        return f"protective engine heartbeat ({self.name})"


class ProtectiveAssetState(models.Model):
    """The last price the engine used for an asset at a venue (orders are evaluated at the price
    of the venue holding them), and whether that price is stale."""

    venue = models.CharField(max_length=32)
    asset = models.CharField(max_length=32)
    last_price = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    last_price_at = models.DateTimeField(null=True, blank=True)
    last_source = models.CharField(max_length=32, blank=True, default="")
    stale = models.BooleanField(default=False)
    stale_since = models.DateTimeField(null=True, blank=True)
    evaluated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "trading"
        ordering = ["venue", "asset"]
        constraints = [models.UniqueConstraint(fields=["venue", "asset"], name="protective_asset_state_venue_asset")]

    def __str__(self):
        return f"{self.venue}:{self.asset} {'stale' if self.stale else 'fresh'}"


class PositionRiskState(models.Model):
    """Risk flags of an open position, set when the condition is entered, cleared when left."""

    position = models.OneToOneField(
        "trading.Position", on_delete=models.CASCADE, primary_key=True, related_name="risk_state"
    )
    near_liquidation_since = models.DateTimeField(null=True, blank=True)
    uncovered_since = models.DateTimeField(null=True, blank=True, help_text="first seen without a working stop")
    stop_missing_flagged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "trading"

    def __str__(self):
        return f"risk state of position {self.position_id}"
