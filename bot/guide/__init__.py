"""What clients and the firm read: the guide, its buttons and their callback data."""
