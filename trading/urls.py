from django.urls import path

from trading.api import accounts, auth, ledger

urlpatterns = [
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
]
