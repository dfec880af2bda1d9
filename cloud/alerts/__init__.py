"""Alerts to people: rules per organisation, the engine that raises and clears them, the Telegram bot."""
