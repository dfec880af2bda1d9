"""Accounts: organisations, the people who sign in (staff and residents), their roles and sessions."""
