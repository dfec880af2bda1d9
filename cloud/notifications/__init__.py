"""Notifications: the outbox of e-mail and Telegram messages, and reminders to debtors."""
