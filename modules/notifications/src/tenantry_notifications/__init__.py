"""Notifications: email over SMTP and signed webhooks, fed by other modules' events."""
