"""The stores the repository is made of, one per concern."""
