from django.urls import path

from trading.api import accounts, auth, ledger, prices, reference, trading

urlpatterns = [
    path("trading/trades", trading.TradeOpen.as_view(), name="trading-trades"),  # first: the hot path
    path("auth/register", auth.RegisterView.as_view(), name="auth-register"),
    path("auth/login", auth.LoginView.as_view(), name="auth-login"),
    path("auth/refresh", auth.RefreshView.as_view(), name="auth-refresh"),
    path("auth/logout", auth.LogoutView.as_view(), name="auth-logout"),
    path("auth/wallet/nonce", auth.WalletNonceView.as_view(), name="auth-wallet-nonce"),
    path("auth/wallet/connect", auth.WalletConnectView.as_view(), name="auth-wallet-connect"),
    path("me", accounts.MeView.as_view(), name="me"),
    path("wallets", accounts.WalletList.as_view(), name="wallets"),
    path("wallets/<int:pk>/deactivate", accounts.WalletDeactivate.as_view(), name="wallet-deactivate"),
    path("ledger/events", ledger.EventList.as_view(), name="ledger-events"),
    path("ledger/events/<str:pk>", ledger.EventDetail.as_view(), name="ledger-event"),
    path("trading/trades/<str:pair_id>/<str:index>", trading.TradeDetail.as_view(), name="trading-trade"),
    path("trading/positions", trading.PositionList.as_view(), name="trading-positions"),
    path("trading/orders", trading.OrderList.as_view(), name="trading-orders"),
    path("trading/orders/<int:pk>", trading.OrderDetail.as_view(), name="trading-order"),
    path("trading/orders/<int:pk>/cancel", trading.OrderCancel.as_view(), name="trading-order-cancel"),
    path("prices", prices.PriceList.as_view(), name="prices"),
    path("prices/<str:pair>", prices.PriceDetail.as_view(), name="price"),
    path("ops/reference-prices", reference.ReferencePrices.as_view(), name="ops-reference-prices"),
    path("ops/reference-prices/refresh", reference.ReferenceRefresh.as_view(), name="ops-reference-refresh"),
    path("ops/reference-prices/pause", reference.ReferencePause.as_view(), name="ops-reference-pause"),
    path("ops/reference-prices/resume", reference.ReferenceResume.as_view(), name="ops-reference-resume"),
    path("ops/reference-prices/samples", reference.ReferenceSampleAt.as_view(), name="ops-reference-sample-at"),
    path(
        "ops/reference-prices/samples/<int:pk>", reference.ReferenceSampleDetail.as_view(), name="ops-reference-sample"
    ),
]
