"""What runs beside the conversations: notices, reminders, digest, polling, alerts."""
