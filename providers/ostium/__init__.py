"""Exchange/broker providers."""
